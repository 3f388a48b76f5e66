"""Terminal safety: history text is printed with control characters escaped, and a reader
that leaves early (`kdstudio runs | head -1`) ends the command quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kdstudio.cli import EXIT_BROKEN_PIPE
from kdstudio.core.events import Log
from kdstudio.core.store import Store
from tests.helpers import tiny_config
from tests.reliability.conftest import cli_env, run_cli

HOSTILE = "red\x1b[31mALERT\x1b[0m\rfake\u202eevil\x07"
ESCAPED = "red\\x1b[31mALERT\\x1b[0m\\rfake\\u202eevil\\x07"


def history_with_runs(path: Path, count: int, name: str = "run") -> None:
    """`count` finished runs written straight into a history file (no training)."""
    config = tiny_config().to_dict()
    with Store(path) as store, store.db.atomic():
        for index in range(count):
            run_id = store.create_run(config | {"name": f"{name}-{index}"}, pid=None)
            store.update_run(run_id, status="completed", finished_at="2026-01-01T00:00:00")


def test_hostile_name_tags_and_notes_are_printed_escaped(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    config = tiny_config().to_dict() | {"name": HOSTILE}
    with Store(db) as store:
        run_id = store.create_run(config, pid=None)
        store.update_run(run_id, status="failed", tags=[HOSTILE, "plain"], notes=HOSTILE + "\n2",
                         error=HOSTILE)
    listing = run_cli("runs", "--db", db)
    shown = run_cli("show", str(run_id), "--db", db)
    for process in (listing, shown):
        assert process.returncode == 0, process.stderr
        for char in ("\x1b", "\r", "\u202e", "\x07"):
            assert char not in process.stdout + process.stderr
    assert ESCAPED in listing.stdout.splitlines()[2]
    lines = shown.stdout.splitlines()
    assert lines[0] == f"Run {run_id}: {ESCAPED}  [failed]"
    assert f"Tags: {ESCAPED}, plain" in lines
    assert f"Notes: {ESCAPED}\\n2" in lines
    assert f"Error: {ESCAPED}" in lines


def test_log_lines_of_a_run_are_escaped(tmp_path: Path, capsys) -> None:
    from kdstudio.cli.console import ConsolePrinter

    class Stream:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    stream = Stream()
    printer = ConsolePrinter(stream)  # type: ignore[arg-type]
    printer(Log(1, "warning", f"teacher from {HOSTILE}"))
    assert stream.text == f"! teacher from {ESCAPED}\n"


def read_one_line_then_close(*args: str | Path) -> tuple[str, int, str]:
    """Run the CLI with stdout a pipe; read one line, close our end, and wait."""
    process = subprocess.Popen([sys.executable, "-m", "kdstudio", *map(str, args)],
                               env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline().decode()
    process.stdout.close()
    err = process.stderr.read().decode()
    return first, process.wait(timeout=120), err


def test_runs_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    history_with_runs(db, 2000)
    full = run_cli("runs", "--db", db, "--limit", "2000")
    assert full.returncode == 0 and len(full.stdout) > 2 * 65536  # more than a pipe holds
    first, code, err = read_one_line_then_close("runs", "--db", db, "--limit", "2000")
    assert first.split()[:3] == ["id", "name", "status"]
    assert code == EXIT_BROKEN_PIPE == 141  # as a Unix tool killed by SIGPIPE
    assert err == ""


@pytest.mark.parametrize("command", [["show", "1"], ["runs"], ["presets"]])
def test_output_into_an_already_closed_pipe_ends_quietly(tmp_path: Path, command: list[str]
                                                         ) -> None:
    db = tmp_path / "h.db"
    history_with_runs(db, 2)
    args = [*command, "--db", str(db)] if command[0] != "presets" else command
    process = subprocess.Popen([sys.executable, "-m", "kdstudio", *args], env=cli_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # before the command has printed anything
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141
    assert err == ""
