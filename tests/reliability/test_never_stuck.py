"""Never stuck: an exception in the window's run start, event handling or run-end handling
(or in the worker around the engine) leaves the window usable: Start enabled, Stop
disabled, the run's row not `running`, the reason stored, the error shown once.

Each test injects an exception at one point of a real run in a real QThread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QMessageBox

from kdstudio.core.events import Event, Step
from kdstudio.core.store import Store
from kdstudio.gui.app import MainWindow
from kdstudio.gui.gc_guard import collect_on_gui_thread
from kdstudio.gui.run.live_view import LiveView, SummaryCard
from tests.gui.conftest import set_tiny_run, settings_in

RUN_TIMEOUT_MS = 60_000


class Injected(RuntimeError):
    """The exception the tests raise inside the window."""


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every message box text the window shows (none blocks the test)."""
    texts: list[str] = []

    def warning(_parent: Any, _title: str, text: str, *_args: Any) -> None:
        texts.append(text)

    monkeypatch.setattr(QMessageBox, "warning", warning)
    return texts


@pytest.fixture
def window(qtbot, tmp_path: Path, shown: list[str]) -> Iterator[MainWindow]:
    collect_on_gui_thread()
    win = MainWindow(db_path=tmp_path / "history.db", settings=settings_in(tmp_path))
    win.confirm_close = True
    qtbot.addWidget(win)
    win.show()
    set_tiny_run(win)
    yield win
    if win.controller.thread_alive():
        win.controller.stop_and_wait(10_000)


def _runs(db: Path) -> list[dict[str, Any]]:
    with Store(db) as store:
        return [store.get_run(row["id"]) for row in store.list_runs()]


def _assert_usable(win: MainWindow) -> None:
    assert not win.controller.running
    assert not win.controller.thread_alive()
    assert win.start_button.isEnabled(), win.start_button.toolTip()
    assert not win.stop_button.isEnabled()
    assert not win.pause_button.isEnabled()
    assert win.setup.isEnabled()


def _run_to_end(qtbot, win: MainWindow) -> dict[str, Any] | None:
    with qtbot.waitSignal(win.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        win.start_run()
    return finished.args[0]


def test_error_before_the_worker_starts(qtbot, window, tmp_path, shown, monkeypatch):
    def begin_run(*_args: Any) -> None:
        raise Injected("begin_run")

    monkeypatch.setattr(LiveView, "begin_run", begin_run)
    assert window.start_run() is False
    _assert_usable(window)
    assert _runs(tmp_path / "history.db") == []  # nothing started, nothing left running
    assert len(shown) == 1 and "window error: Injected: begin_run" in shown[0]
    assert window.status_label.text() == "window error: Injected: begin_run"
    monkeypatch.undo()  # the next Start works
    result = _run_to_end(qtbot, window)
    assert result["status"] == "completed"
    assert len(shown) == 1


def test_error_after_the_worker_started(qtbot, window, tmp_path, shown, monkeypatch):
    def hide() -> None:
        raise Injected("after start")

    monkeypatch.setattr(window.problems_label, "hide", hide)  # called after controller.start
    result = _run_to_end(qtbot, window)
    _assert_usable(window)
    reason = "window error: Injected: after start"
    assert result["status"] == "failed" and result["error"] == reason
    [run] = _runs(tmp_path / "history.db")
    assert (run["status"], run["error"]) == ("failed", reason)
    assert len(shown) == 1 and reason in shown[0]


def test_error_in_event_handling_stops_the_run_once(qtbot, window, tmp_path, shown,
                                                    monkeypatch):
    real_push = LiveView.push
    raised: list[str] = []

    def push(self: LiveView, event: Event, *args: Any) -> None:
        if isinstance(event, Step) and event.run_step >= 3:
            raised.append(event.kind)
            raise Injected("bad event")
        real_push(self, event, *args)

    monkeypatch.setattr(LiveView, "push", push)
    set_tiny_run(window, teacher_epochs=3000, epochs=3000, batch_size=16)  # stopped early
    result = _run_to_end(qtbot, window)
    _assert_usable(window)
    reason = "window error: Injected: bad event"
    [run] = _runs(tmp_path / "history.db")
    assert (run["status"], run["error"]) == ("failed", reason)
    assert result["status"] == "failed"
    assert len(raised) == 1  # later events are not handled while the run stops
    assert len(shown) == 1 and reason in shown[0]
    assert "The window stopped the run" in shown[0]
    with Store(tmp_path / "history.db") as store:  # what was trained before is kept
        assert len(store.metrics(run["id"], name="loss/total")) >= 3
    assert window.live.log_view.toPlainText().count(reason) == 1


def test_error_in_run_end_handling_marks_the_run_failed(qtbot, window, tmp_path, shown,
                                                        monkeypatch):
    def show_run(self: SummaryCard, run: dict[str, Any]) -> None:
        raise Injected("summary card")

    monkeypatch.setattr(SummaryCard, "show_run", show_run)
    result = _run_to_end(qtbot, window)
    _assert_usable(window)
    [run] = _runs(tmp_path / "history.db")
    reason = "window error: Injected: summary card"
    assert result["status"] == run["status"] == "failed" and run["error"] == reason
    assert run["student_test_acc"] is not None  # the results the engine stored stay
    assert len(shown) == 1 and reason in shown[0]
    assert "stopped" not in shown[0]


def test_error_in_the_buttons_update_still_enables_start(qtbot, window, shown, monkeypatch):
    real_update = MainWindow._update_buttons
    calls = {"n": 0}

    def update(self: MainWindow) -> None:
        if self.last_run_id is not None and not self.controller.running:  # the run's end
            calls["n"] += 1
            raise Injected("buttons")
        real_update(self)

    monkeypatch.setattr(MainWindow, "_update_buttons", update)
    result = _run_to_end(qtbot, window)
    assert calls["n"] >= 1
    assert result["status"] == "failed" and result["error"] == "window error: Injected: buttons"
    assert window.start_button.isEnabled()
    assert not window.stop_button.isEnabled()
    assert len(shown) == 1


def test_error_in_the_buttons_update_after_validation_between_runs(qtbot, window, shown,
                                                                   monkeypatch):
    """A failing button update after the form's validation, with no run going, reaches
    neither Qt's event loop nor the next run: Start is enabled and the status bar says it."""
    def update(self: MainWindow) -> None:
        raise Injected("buttons")

    monkeypatch.setattr(MainWindow, "_update_buttons", update)
    window.show_validation([])
    assert window.start_button.isEnabled()
    assert not window.stop_button.isEnabled()
    assert window.statusBar().currentMessage() == "window error: Injected: buttons"
    assert window.run_control.window_error == ""  # the next run is not charged with it
    assert shown == []


def test_error_of_the_history_at_run_end_in_the_worker(qtbot, window, tmp_path, shown,
                                                       monkeypatch):
    real_finish = Store.finish_run
    calls = {"n": 0}

    def finish_run(self: Store, run_id: int, status: str, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # the engine's own call, in the worker thread
            raise OSError(28, "No space left on device")
        real_finish(self, run_id, status, *args, **kwargs)

    monkeypatch.setattr(Store, "finish_run", finish_run)
    result = _run_to_end(qtbot, window)
    _assert_usable(window)
    [run] = _runs(tmp_path / "history.db")
    assert run["status"] == "failed"
    assert "No space left on device" in run["error"]
    assert result["status"] == "failed" and result["error"] == run["error"]
    assert "No space left on device" in window.status_label.text()  # shown inline, once
    assert shown == []
