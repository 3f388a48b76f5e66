"""The layers of the code base hold: import-linter's contracts (pyproject.toml) pass, only the
task helper and the run's worker touch threads, and the command line imports the window
only when it opens one."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUI = ROOT / "kdstudio" / "gui"
THREAD_OWNERS = {GUI / "tasks.py", GUI / "run" / "worker.py"}
THREAD_MODULES = {"threading", "_thread", "concurrent.futures"}
THREAD_NAMES = {"QThread", "QThreadPool", "QRunnable"}
WINDOW_MODULES = ("kdstudio.gui", "PySide6", "pyqtgraph", "shiboken6")


def thread_uses(source: str) -> list[str]:
    """`line: what` for every import of a thread module and every use of a Qt thread class
    in this Python source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {alias.name}" for alias in node.names
                      if alias.name in THREAD_MODULES]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = {alias.name for alias in node.names}
            if module in THREAD_MODULES or (module == "concurrent" and "futures" in names):
                found.append(f"{node.lineno}: from {module} import ...")
            found += [f"{node.lineno}: imports {name}" for name in sorted(names & THREAD_NAMES)]
        elif isinstance(node, ast.Attribute) and node.attr in THREAD_NAMES:
            found.append(f"{node.lineno}: uses {node.attr}")
        elif isinstance(node, ast.Name) and node.id in THREAD_NAMES:
            found.append(f"{node.lineno}: uses {node.id}")
    return found


def top_level_imports(source: str) -> Iterator[str]:
    """The modules a source imports when it is imported (not inside functions or classes)."""
    def walk(statements: list[ast.stmt]) -> Iterator[str]:
        for node in statements:
            if isinstance(node, ast.Import):
                yield from (alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                yield node.module or ""
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    for part in getattr(node, block, []):
                        yield from walk(part.body if isinstance(part, ast.ExceptHandler)
                                        else [part])
    yield from walk(ast.parse(source).body)


def test_the_thread_checker_finds_every_kind_of_use() -> None:
    source = ("import threading\nfrom concurrent import futures\n"
              "from concurrent.futures import ThreadPoolExecutor\n"
              "from PySide6.QtCore import QThread, QObject\n"
              "import PySide6.QtCore as qc\npool = qc.QThreadPool()\n")
    assert thread_uses(source) == ["1: import threading", "2: from concurrent import ...",
                                   "3: from concurrent.futures import ...",
                                   "4: imports QThread", "6: uses QThreadPool"]
    assert thread_uses("import time\nfrom PySide6.QtCore import QTimer\n") == []


def test_only_the_task_helper_and_the_run_worker_touch_threads() -> None:
    offenders = {}
    for path in sorted(GUI.rglob("*.py")):
        if path not in THREAD_OWNERS:
            uses = thread_uses(path.read_text(encoding="utf-8"))
            if uses:
                offenders[str(path.relative_to(ROOT))] = uses
    assert offenders == {}, ("thread code outside gui/tasks.py and gui/run/worker.py "
                             f"(run it as a gui.tasks.Task): {offenders}")
    for owner in THREAD_OWNERS:  # the exceptions are real: the owners do use threads
        assert thread_uses(owner.read_text(encoding="utf-8"))


def test_the_command_line_imports_the_window_only_to_open_it() -> None:
    cli = ROOT / "kdstudio" / "cli"
    sources = [ROOT / "kdstudio" / "__main__.py", *sorted(cli.rglob("*.py"))]
    assert len(sources) >= 3  # __main__.py and the cli package's modules
    for path in sources:
        name = path.relative_to(ROOT).as_posix()
        imported = list(top_level_imports(path.read_text("utf-8")))
        assert imported, name
        window = [m for m in imported if m.split(".")[0] in WINDOW_MODULES
                  or m.startswith(WINDOW_MODULES)]
        assert window == [], f"{name} imports {window} at import time"


def test_the_import_checker_sees_imports_at_module_level_only() -> None:
    source = ("import sys\nfrom kdstudio.gui import app\nif sys:\n    import PySide6\n"
              "def opened():\n    import pyqtgraph\n")
    assert list(top_level_imports(source)) == ["sys", "kdstudio.gui", "PySide6"]


def _lint_imports() -> list[str]:
    script = Path(sys.executable).with_name("lint-imports")
    if not script.exists():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.fail("lint-imports is not installed (pip install -e '.[test]')")
        script = Path(found)
    return [str(script), "--no-cache"]  # reads pyproject.toml in the working folder


def test_import_contracts_are_kept() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(_lint_imports(), cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
