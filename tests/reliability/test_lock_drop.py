"""The lock-drop case: a file dialog shows the history's folder, another `kdstudio` process
writes a run into the history, then the window runs: nothing may be lost.

Qt's own dialogs open every file of the folder they show (to sniff MIME types); closing
those descriptors drops this process's SQLite locks on the history, and the other process
then deletes the WAL under the window's connection. The app's dialogs (gui/widgets/file_dialogs.py)
must never open them, and no other module may build a QFileDialog.
"""

from __future__ import annotations

import ast
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QFileSystemModel, QMessageBox

import kdstudio.gui
from kdstudio.core.config import config_from_dict
from kdstudio.core.engine import run as engine_run
from kdstudio.core.store import Store
from kdstudio.gui.app import MainWindow
from kdstudio.gui.gc_guard import collect_on_gui_thread
from tests.gui.conftest import set_tiny_run, settings_in
from tests.helpers import tiny_config
from tests.reliability.conftest import assert_no_traceback, run_cli

GUI_FOLDER = Path(kdstudio.gui.__file__).parent
DIALOG_MODULE = "widgets/file_dialogs.py"
GATHER_MS = 1500  # the dialog's file gatherer has listed a small folder well before this
RUN_TIMEOUT_MS = 60_000


def _names_used(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update(alias.name.rsplit(".", 1)[-1] for alias in node.names)
    return names


def test_only_the_dialog_module_uses_qfiledialog() -> None:
    modules = sorted(GUI_FOLDER.rglob("*.py"))
    assert len(modules) > 10
    offenders = [str(path.relative_to(GUI_FOLDER)) for path in modules
                 if path.relative_to(GUI_FOLDER).as_posix() != DIALOG_MODULE
                 and "QFileDialog" in _names_used(path.read_text(encoding="utf-8"))]
    assert offenders == [], ("build file dialogs with kdstudio.gui.widgets.file_dialogs, never "
                             f"QFileDialog directly: {offenders}")
    assert "QFileDialog" in _names_used((GUI_FOLDER / DIALOG_MODULE).read_text("utf-8"))


PROBE = textwrap.dedent('''
    import os, sys
    from pathlib import Path
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication, QFileDialog, QFileSystemModel
    from kdstudio.core.store import Store
    from kdstudio.gui.widgets.file_dialogs import file_dialog

    folder = Path(sys.argv[1])
    app = QApplication([])
    store = Store(folder / "h.db")
    store.create_run({"probe": 1})
    store.flush()

    def mark(name):  # a failed open that strace shows between the dialogs
        try:
            os.open(str(folder / f"MARK-{name}"), os.O_RDONLY)
        except FileNotFoundError:
            pass

    def show(dialog):
        dialog.show()
        loop = QEventLoop()
        QTimer.singleShot(int(sys.argv[2]), loop.quit)
        loop.exec()
        model = dialog.findChild(QFileSystemModel)
        root = model.index(str(folder))
        listed = sorted(model.index(row, 0, root).data() for row in range(model.rowCount(root)))
        print(dialog.windowTitle(), listed, flush=True)
        dialog.reject()

    mark("ours")
    show(file_dialog(None, "open", str(folder), "Config (*.toml)", "open"))
    show(file_dialog(None, "save", str(folder / "out.csv"), "CSV files (*.csv)", "save"))
    show(file_dialog(None, "folder", str(folder), mode="folder"))
    mark("qt")
    plain = QFileDialog(None, "qt", str(folder))
    plain.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    show(plain)
    mark("end")
    store.close()
''')


def _history_opens(trace: str) -> dict[str, int]:
    """Opens of h.db / h.db-wal / h.db-shm in each part of the probe's strace output."""
    counts: dict[str, int] = {}
    part = ""
    for line in trace.splitlines():
        if "openat(" not in line:
            continue
        if "/MARK-" in line:
            part = line.split("/MARK-", 1)[1].split('"', 1)[0]
            counts[part] = 0
        elif part and '/h.db' in line:
            counts[part] += 1
    return counts


def test_the_app_dialogs_never_open_the_history_files(tmp_path: Path) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed: cannot watch the dialogs' file opens")
    (tmp_path / "a.toml").write_text("seed = 1\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("x\n", encoding="utf-8")
    trace = tmp_path / "trace.txt"
    script = tmp_path / "probe.py"
    script.write_text(PROBE, encoding="utf-8")
    process = subprocess.run(
        [strace, "-f", "-e", "trace=openat", "-o", str(trace), sys.executable, str(script),
         str(tmp_path), str(GATHER_MS)], capture_output=True, text=True, timeout=120)
    if process.returncode != 0 and "ptrace" in process.stderr:
        pytest.skip(f"strace cannot trace here: {process.stderr.strip()[:200]}")
    assert process.returncode == 0, process.stderr
    listed = dict(line.split(" ", 1) for line in process.stdout.splitlines())
    # the dialogs work: they list and filter (h-artifacts: the run's folder, made at its
    # start for its disk reserve)
    assert listed["open"] == "['a.toml', 'h-artifacts']"
    assert listed["save"] == "['b.csv', 'h-artifacts']"
    assert listed["folder"] == "['h-artifacts']"  # only folders
    assert "h.db" in listed["qt"]
    counts = _history_opens(trace.read_text(encoding="utf-8"))
    # Qt's own dialog opens them (this is what the check must see), the app's never
    assert counts["qt"] > 0, "strace saw no open by Qt's own dialog: the check is blind"
    assert counts["ours"] == 0, f"the app's dialogs opened the history's files: {counts}"


def test_save_dialog_starts_in_the_folder_of_a_suggested_file(qtbot, tmp_path: Path) -> None:
    from kdstudio.gui.widgets.file_dialogs import file_dialog

    dialog = file_dialog(None, "save", str(tmp_path / "run-1-metrics.csv"), "CSV (*.csv)",
                         "save")
    qtbot.addWidget(dialog)
    assert Path(dialog.directory().absolutePath()) == tmp_path
    assert dialog.acceptMode() == QFileDialog.AcceptMode.AcceptSave
    assert dialog.testOption(QFileDialog.Option.DontUseNativeDialog)
    with pytest.raises(ValueError, match="mode 'pick'"):
        file_dialog(None, "x", mode="pick")


# ---------------------------------------------------------------- through the real window


def _cancel_file_dialog_after(ms: int, seen: list[tuple[str, list[str]]]) -> None:
    """Once the app's modal file dialog is up and `ms` have passed, note what it shows and
    cancel it (as a user who looked and pressed Cancel)."""
    def cancel() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QFileDialog):
            QTimer.singleShot(50, cancel)
            return
        model = dialog.findChild(QFileSystemModel)
        folder = dialog.directory().absolutePath()
        root = model.index(folder)
        seen.append((folder, [model.index(row, 0, root).data()
                              for row in range(model.rowCount(root))]))
        dialog.reject()

    QTimer.singleShot(ms, cancel)


def _row_counts(db: Path, run_id: int) -> dict[tuple[str, str], int]:
    with sqlite3.connect(db) as con:
        return {(phase, name): count for phase, name, count in con.execute(
            "SELECT phase, name, COUNT(*) FROM metrics WHERE run_id = ? GROUP BY phase, name",
            (run_id,))}


def _check_history(db: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return con.execute("SELECT id, status FROM runs ORDER BY id").fetchall()


def test_window_run_after_dialog_and_another_process_loses_nothing(
        qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    collect_on_gui_thread()
    warnings: list[str] = []  # a message box would wait for a click
    monkeypatch.setattr(QMessageBox, "warning", lambda _w, _t, text, *_a: warnings.append(text))
    history = tmp_path / "history.db"
    monkeypatch.chdir(tmp_path)  # a chart export offers a file name in the current folder
    window = MainWindow(db_path=history, settings=settings_in(tmp_path))
    window.confirm_close = True
    qtbot.addWidget(window)
    window.show()
    assert window.store is not None  # the window's own connection is open

    seen: list[tuple[str, list[str]]] = []
    _cancel_file_dialog_after(GATHER_MS, seen)
    window.live.loss_chart._export_dialog("csv")  # File > Export of the loss chart, Cancel
    assert seen and Path(seen[0][0]) == tmp_path, seen

    config = tiny_config()
    config.name = "from the terminal"
    config_file = tmp_path / "tiny.toml"
    config_file.write_text(config.to_toml(), encoding="utf-8")
    other = run_cli("run", config_file, "--db", history, "--quiet", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert_no_traceback(other)

    set_tiny_run(window)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        window.start_run()
    result = finished.args[0]
    assert result["status"] == "completed", result
    assert window.start_button.isEnabled()
    assert warnings == []

    runs = _check_history(history)
    assert runs == [(1, "completed"), (2, "completed")]
    written = {run_id: _row_counts(history, run_id) for run_id, _status in runs}
    window_config = window.store.get_run(2)["config"]

    window.close()
    assert _check_history(history) == runs  # the file survives closing the window
    assert {run_id: _row_counts(history, run_id) for run_id, _ in runs} == written

    reference = tmp_path / "reference.db"  # the same two configs run alone
    with Store(reference) as store:
        for data in (config.to_dict(), window_config):
            engine_run(config_from_dict(data)[0], store)
    for run_id in (1, 2):
        assert written[run_id] == _row_counts(reference, run_id), run_id
    assert written[1][("student", "loss/total")] == 10  # tiny_config: 5 steps x 2 epochs
