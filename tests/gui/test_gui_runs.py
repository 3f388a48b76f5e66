"""Runs from the window: a real engine in a real QThread, a real SQLite history file."""

from __future__ import annotations

import datetime as dt
import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QPushButton

from kdstudio.core.checkpoint import save_model
from kdstudio.core.models import create_model
from kdstudio.core.store import Store
from kdstudio.gui.app import MainWindow
from tests.gui.conftest import find, pick, set_tiny_run

RUN_TIMEOUT_MS = 60_000


def click(qtbot, win: MainWindow, name: str) -> None:
    button = find(win, QPushButton, name)
    assert button.isEnabled(), f"{name} is disabled: {button.toolTip()}"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def run_to_the_end(qtbot, win: MainWindow) -> dict:
    """Press Start, wait for the run to finish and check it completed; its result."""
    with qtbot.waitSignal(win.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        click(qtbot, win, "startButton")
    result = finished.args[0]
    assert result["status"] == "completed", result.get("error")
    return result


def start_long_run(qtbot, win: MainWindow, steps_before: int = 15) -> None:
    """A run far longer than any test waits (thousands of steps); returns once it trains."""
    set_tiny_run(win, teacher_epochs=3000, epochs=3000, batch_size=16)
    click(qtbot, win, "startButton")
    qtbot.waitUntil(lambda: win.last_run_id is not None
                    and win.controller.flags.run_step >= steps_before, timeout=30_000)


def test_form_run_to_the_end_fills_charts_and_summary_from_the_db(qtbot, window, tmp_path):
    set_tiny_run(window, teacher_epochs=1, epochs=1)
    assert not find(window, QPushButton, "pauseButton").isEnabled()
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        click(qtbot, window, "startButton")
        assert not window.setup.isEnabled()  # the form is locked during the run
    result = finished.args[0]
    assert result["status"] == "completed"
    assert not window.controller.thread_alive()

    live = window.live
    # 300 samples -> 240 (test carved) -> 192 train -> 3 batches of 64 per epoch and phase;
    # teacher and baseline log CE + total, the distilled student CE + KD + total
    assert set(live.loss_chart.series) == {"total", "CE", "KD"}
    assert live.loss_chart.point_count() == 3 * 2 + 3 * 2 + 3 * 3
    assert live.accuracy_chart.point_count() == 6  # train + val, one epoch, three phases
    assert live.agreement_chart.point_count() == 2  # baseline and student against the teacher
    assert live.progress_bar.value() == live.progress_bar.maximum()
    assert live.steps_seen == live.run_steps == 9

    with Store(tmp_path / "history.db") as store:
        row = store.get_run(result["run_id"])
        assert row["status"] == "completed"
        assert row["name"] == "gui-test"
        assert len(store.metrics(result["run_id"], name="loss/total")) == 9
    card = window.live.summary_card
    assert card.cells["teacher_test_acc"].text() == f"{row['teacher_test_acc']:.2%}"
    assert card.cells["baseline_test_acc"].text() == f"{row['baseline_test_acc']:.2%}"
    assert card.cells["student_test_acc"].text() == f"{row['student_test_acc']:.2%}"
    assert f"{row['kd_gain'] * 100:+.2f} points" in card.gain.text()
    assert f"{row['compression']:.1f}×" in card.compression.text()
    assert "completed" in card.title.text()
    assert "Distilled student test accuracy" in live.log_view.toPlainText()
    assert window.setup.isEnabled()
    assert find(window, QPushButton, "startButton").isEnabled()

    # Open from the history replays the run: every chart gets the points it had live
    shown = _chart_points(live)
    bars = {phase: (bar.bar.value(), bar.bar.maximum()) for phase, bar in live.phase_bars.items()}
    live.begin_run()  # wipe the view, as the next run would
    live.end_run()
    assert _chart_points(live) != shown
    assert window.open_run(result["run_id"])
    assert _chart_points(live) == shown
    assert {phase: (bar.bar.value(), bar.bar.maximum())
            for phase, bar in live.phase_bars.items()} == bars
    assert live.progress_bar.value() == live.progress_bar.maximum() == 9
    assert live.progress_bar.full_text.startswith("completed after")
    assert card.cells["student_test_acc"].text() == f"{row['student_test_acc']:.2%}"
    log = live.log_view.toPlainText()
    assert "Replayed from the history" in log
    with Store(tmp_path / "history.db") as store:  # stamped with when the run wrote them
        finished_at = dt.datetime.fromisoformat(store.get_run(result["run_id"])["finished_at"])
    stamp = time.strftime("%H:%M:%S", time.localtime(finished_at.timestamp()))
    assert f"{stamp} Run completed after" in log


def _chart_points(live) -> dict[tuple[str, str], tuple[list, list]]:
    return {(chart.objectName() or chart.title_label.text(), name):
            (list(series.xs), list(series.values.raw))
            for chart in live.charts for name, series in chart.series.items()}


def test_stop_takes_effect_within_a_second_and_keeps_metrics(qtbot, window, tmp_path):
    start_long_run(qtbot, window)
    with qtbot.waitSignal(window.run_finished, timeout=5_000) as finished:
        clicked = time.monotonic()
        click(qtbot, window, "stopButton")
    assert time.monotonic() - clicked < 1.0
    result = finished.args[0]
    assert result["status"] == "stopped"
    with Store(tmp_path / "history.db") as store:
        assert store.get_run(result["run_id"])["status"] == "stopped"
        losses = store.metrics(result["run_id"], name="loss/total", phase="teacher")
        assert len(losses) >= 15
    assert "stopped" in window.live.summary_card.title.text()


def test_pause_holds_the_step_count_until_resume(qtbot, window):
    start_long_run(qtbot, window)
    flags = window.controller.flags
    click(qtbot, window, "pauseButton")
    qtbot.waitUntil(flags.blocked.is_set, timeout=2_000)
    assert find(window, QPushButton, "pauseButton").text() == "Resume"
    held = flags.run_step
    qtbot.wait(500)
    assert flags.run_step == held
    window.live.drain()
    assert window.live.steps_seen == held

    click(qtbot, window, "pauseButton")  # resume
    qtbot.waitUntil(lambda: flags.run_step > held + 5, timeout=5_000)
    with qtbot.waitSignal(window.run_finished, timeout=5_000) as finished:
        click(qtbot, window, "stopButton")
    assert finished.args[0]["status"] == "stopped"


def test_stop_while_paused_ends_the_run(qtbot, window):
    start_long_run(qtbot, window)
    click(qtbot, window, "pauseButton")
    qtbot.waitUntil(window.controller.flags.blocked.is_set, timeout=2_000)
    with qtbot.waitSignal(window.run_finished, timeout=2_000) as finished:
        click(qtbot, window, "stopButton")
    assert finished.args[0]["status"] == "stopped"


def test_closing_mid_run_asks_then_stops_and_waits_for_the_thread(qtbot, window, tmp_path):
    start_long_run(qtbot, window)
    run_id = window.last_run_id
    window.confirm_close = False  # the user says "no": the window stays, the run goes on
    window.close()
    assert window.isVisible()
    assert window.controller.thread_alive()

    window.confirm_close = True
    window.close()
    assert not window.isVisible()
    assert window.controller.thread is not None
    assert window.controller.thread.isFinished()
    with Store(tmp_path / "history.db") as store:
        row = store.get_run(run_id)
        assert row["status"] == "stopped"
        assert store.metrics(run_id, name="loss/total")


def test_reuse_the_teacher_of_a_saved_run(qtbot, window, tmp_path):
    set_tiny_run(window, teacher_epochs=1, epochs=1)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as first:
        click(qtbot, window, "startButton")
    first_id = first.args[0]["run_id"]

    panel = window.setup
    pick(find(window, QComboBox, "teacherArchCombo"), "cnn")  # reuse must overwrite this
    pick(find(window, QComboBox, "teacherSourceCombo"), "run")
    runs = find(window, QComboBox, "teacherRunCombo")
    assert runs.currentData() == first_id
    with Store(tmp_path / "history.db") as store:
        teacher_file = store.artifacts(first_id, "teacher")[0]["path"]
    data, problems = panel.config_dict()
    assert problems == []
    assert data["teacher"]["checkpoint"] == teacher_file
    assert data["teacher"]["arch"] == "mlp"
    assert data["teacher"]["params"]["hidden_sizes"] == [32]
    assert not find(window, QComboBox, "teacherArchCombo").isEnabled()

    window.setup.validate_now()
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as second:
        click(qtbot, window, "startButton")
    assert second.args[0]["status"] == "completed"
    assert f"Teacher loaded from {teacher_file}" in window.live.log_view.toPlainText()
    with Store(tmp_path / "history.db") as store:
        assert store.metrics(second.args[0]["run_id"], name="loss/total", phase="teacher") == []


def test_a_config_the_engine_refuses_is_reported_and_nothing_is_recorded(
        qtbot, window, tmp_path):
    set_tiny_run(window)
    config, problems = window.setup.run_config()
    assert problems == []
    other = create_model("mlp", (8,), 4, hidden_sizes=[5])  # not the form's teacher
    config.teacher.checkpoint = str(save_model(other, tmp_path, "other")[0])
    window.live.begin_run()
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        window.controller.start(config, window.db_path)  # past the form's own checks
    assert finished.args[0] is None
    label = find(window, QLabel, "problemsLabel")
    assert label.isVisible() and "teacher.checkpoint: " in label.text()
    assert "does not fit mlp" in label.text()
    assert "teacher.checkpoint" in window.live.log_view.toPlainText()
    assert window.live.progress_bar.full_text == "did not start"
    assert find(window, QPushButton, "startButton").isEnabled()
    with Store(tmp_path / "history.db") as store:
        assert store.list_runs() == []


def test_the_status_bar_says_what_the_run_does_not_a_stale_message(qtbot, window):
    qtbot.waitUntil(lambda: window.setup is not None, timeout=10_000)
    window.load_preset("synthetic-quick")
    bar = window.statusBar()
    assert bar.currentMessage() == "Preset synthetic-quick loaded"
    set_tiny_run(window, teacher_epochs=1, epochs=2)
    messages: list[str] = []
    bar.messageChanged.connect(messages.append)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        click(qtbot, window, "startButton")
        assert bar.currentMessage() == "Running gui-test: preparing the data and models…"
    run_id = finished.args[0]["run_id"]
    assert not any("Preset" in message for message in messages)
    phases = [m for m in messages if " phase (" in m]
    assert phases == ["Running gui-test: Teacher phase (1 epoch)",
                      "Running gui-test: Student alone phase (2 epochs)",
                      "Running gui-test: Student + KD phase (2 epochs)"]
    assert bar.currentMessage().startswith(f"Run #{run_id} completed; saved in ")
