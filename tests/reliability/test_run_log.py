"""The run log is kept: every log line a run emits is in the history, comes back in a replay,
in the window's replay and from `kdstudio show RUN --log`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from kdstudio.core.engine import run
from kdstudio.core.events import Event, Log
from kdstudio.core.replay import replay_events
from kdstudio.core.store import Store
from tests.helpers import tiny_config
from tests.reliability.conftest import assert_no_traceback, run_cli


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, list]]:
    """A real run's history and the log events the engine emitted."""
    db = tmp_path_factory.mktemp("log") / "h.db"
    config = tiny_config()
    events: list[Event] = []
    with Store(db) as store:
        result = run(config, store, events.append)
        assert result.status == "completed"
    yield db, result.run_id, [e for e in events if isinstance(e, Log)]


def test_the_stored_log_is_the_log_the_engine_emitted(logged_run) -> None:
    db, run_id, emitted = logged_run
    with Store(db) as store:
        stored = store.logs(run_id)
        run_row = store.get_run(run_id)
    assert len(emitted) >= 6
    assert [(line["level"], line["message"]) for line in stored] == [
        (event.level, event.message) for event in emitted]
    assert [line["seq"] for line in stored] == list(range(1, len(stored) + 1))
    times = [line["wall_time"] for line in stored]
    started = dt.datetime.fromisoformat(run_row["created_at"]).timestamp()
    finished = dt.datetime.fromisoformat(run_row["finished_at"]).timestamp()
    assert times == sorted(times) and started <= times[0] and times[-1] < finished + 1


def test_a_replay_yields_the_log_in_its_order_at_its_times(logged_run) -> None:
    db, run_id, emitted = logged_run
    with Store(db) as store:
        stored = store.logs(run_id)
        replayed = replay_events(store, run_id)
    lines = [(when, event) for when, event in replayed if isinstance(event, Log)]
    assert lines[0][1].message.startswith("Replayed from the history: ")
    assert f"{len(stored)} log lines" in lines[0][1].message
    assert [(event.level, event.message) for _, event in lines[1:]] == [
        (event.level, event.message) for event in emitted]
    assert [when for when, _ in lines[1:]] == [line["wall_time"] for line in stored]


def test_show_log_prints_each_line_with_its_time_and_level(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with Store(db) as store:
        run_id = store.create_run({"name": "r"})
        store.add_log(run_id, "info", "first line")
        store.add_log(run_id, "warning", "red \x1b[31mtext\x1b[0m\nand a second row")
        store.finish_run(run_id, "completed")
        when = store.logs(run_id)[1]["wall_time"]
    process = run_cli("show", str(run_id), "--db", db, "--log")
    assert process.returncode == 0, process.stderr
    assert_no_traceback(process)
    log = process.stdout.split("Log (2 lines, UTC):\n", 1)[1].splitlines()
    stamp = dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.")
    assert log[0].split()[2:] == ["info", "first", "line"]
    assert log[1].startswith(f"  {stamp}")
    assert log[1].endswith("warning  red \\x1b[31mtext\\x1b[0m\\nand a second row")
    assert "\x1b" not in process.stdout
    without = run_cli("show", str(run_id), "--db", db)
    assert "Log (" not in without.stdout and "first line" not in without.stdout


def test_a_resumed_run_s_lines_continue_its_numbering(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        run_id = store.create_run({"name": "r"})
        store.add_log(run_id, "info", "one")
        store.flush()
    with Store(tmp_path / "h.db") as store:  # another process writing into the same run
        store.add_log(run_id, "info", "two")
        store.flush()
        assert [(line["seq"], line["message"]) for line in store.logs(run_id)] == [
            (1, "one"), (2, "two")]


def test_a_replay_in_the_window_shows_the_run_s_log(qtbot, logged_run, tmp_path) -> None:
    from PySide6.QtCore import QSettings

    from kdstudio.gui import MainWindow

    db, run_id, emitted = logged_run
    window = MainWindow(db_path=db, settings=QSettings(str(tmp_path / "settings.ini"),
                                                       QSettings.Format.IniFormat))
    window.confirm_close = True
    qtbot.addWidget(window)
    window.show()
    assert window.open_run(run_id)
    shown = window.live.log_view.toPlainText().splitlines()
    with Store(db) as store:
        stored = store.logs(run_id)
    for line, event in zip(stored, emitted, strict=True):
        stamp = dt.datetime.fromtimestamp(line["wall_time"]).strftime("%H:%M:%S")
        assert f"{stamp} {event.message}" in shown
    messages = [text.split(" ", 1)[1] for text in shown]
    positions = [messages.index(event.message) for event in emitted]
    assert positions == sorted(positions)  # in the order the run wrote them
    assert messages.index(emitted[0].message) > 0  # after the run's start
    assert messages[-1].startswith("Run completed after")
