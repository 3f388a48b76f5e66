"""The run view's progress bars: percentages, ETA and how a run ended, from plain events."""

from __future__ import annotations

import time

import pytest

from kdstudio.core.events import Step
from kdstudio.core.plan import PhasePlan, RunPlan
from kdstudio.gui.run.progress import RunProgress, time_left

PLAN = RunPlan((PhasePlan("teacher", 2, 5), PhasePlan("student", 1, 10)))


def step(phase: str, epoch: int, epochs: int, phase_step: int, steps: int,
         run_step: int) -> Step:
    return Step(run_id=1, phase=phase, epoch=epoch, epochs=epochs, step=phase_step,
                steps=steps, run_step=run_step, run_steps=PLAN.run_steps,
                values={"loss/total": 1.0})


@pytest.fixture
def progress(qtbot) -> RunProgress:
    widget = RunProgress()
    qtbot.addWidget(widget)
    return widget


def test_time_left_needs_a_start_and_some_work_done() -> None:
    assert time_left(100.0, 0.5, 110.0) == pytest.approx(10.0)
    assert time_left(0.0, 0.5, 110.0) is None
    assert time_left(100.0, 0.0, 110.0) is None


def test_bars_follow_the_plan_with_their_eta(progress: RunProgress) -> None:
    progress.begin(["teacher", "student"])
    assert progress.bar.full_text == "preparing data and models…"
    assert progress.phase_bars["baseline"].bar.full_text == "not in this run"
    assert progress.phase_bars["teacher"].bar.full_text == "waiting"

    progress.start(PLAN, started=100.0)
    assert progress.run_steps == 20
    assert progress.bar.full_text == "0%"
    assert progress.phase_bars["teacher"].bar.maximum() == 10

    progress.phase_started("teacher", 100.0)
    progress.show_step(step("teacher", 1, 2, 5, 10, 5), now=130.0)
    teacher = progress.phase_bars["teacher"]
    assert teacher.bar.value() == 5
    # 6 s a step so far, the student priced alike: 30 s done of 120 s
    assert progress.bar.full_text == "25% · elapsed 0:30 · ETA 1:30"
    assert teacher.bar.full_text == "50% · ETA 0:30"
    assert "epoch 1/2" in teacher.title.text()

    progress.phase_finished("teacher", 160.0)
    assert teacher.bar.value() == 10 and teacher.bar.full_text == "done in 1:00"

    progress.phase_started("student", 160.0)
    progress.show_step(step("student", 1, 1, 4, 10, 14), now=180.0)
    assert progress.phase_bars["student"].bar.full_text == "40% · ETA 0:30"
    assert progress.finish("stopped", now=4000.0) == "1:05:00"
    assert progress.bar.full_text == "stopped after 1:05:00"
    assert progress.phase_bars["student"].bar.full_text == "40% · stopped"
    assert teacher.bar.full_text == "done in 1:00"


def test_slow_teacher_steps_and_fast_student_steps_give_the_eta(
        progress: RunProgress) -> None:
    """By steps the run would be 70 % done; by time, 34 s of 40 s are behind it."""
    progress.start(PLAN, started=0.0)
    progress.phase_started("teacher", 0.0)
    progress.show_step(step("teacher", 2, 2, 10, 10, 10), now=30.0)  # 3 s a step
    progress.phase_finished("teacher", 30.0)
    progress.phase_started("student", 30.0)
    progress.show_step(step("student", 1, 1, 4, 10, 14), now=34.0)  # 1 s a step
    assert progress.bar.full_text == "85% · elapsed 0:34 · ETA 0:06"
    assert progress.bar.value() == progress.bar.maximum() * 34 // 40
    assert progress.phase_bars["student"].bar.full_text == "40% · ETA 0:06"


def test_a_pause_moves_neither_the_eta_nor_the_elapsed_time(progress: RunProgress) -> None:
    progress.start(PLAN, started=0.0)
    progress.phase_started("teacher", 0.0)
    progress.show_step(step("teacher", 1, 2, 5, 10, 5), now=10.0)  # 2 s a step
    assert progress.bar.full_text == "25% · elapsed 0:10 · ETA 0:30"
    progress.pause(10.0)
    assert progress.bar.full_text == "25% · elapsed 0:10 · paused"
    progress.resume(14.0)  # 4 s paused
    assert progress.bar.full_text == "25% · elapsed 0:10 · ETA 0:30"
    progress.show_step(step("teacher", 2, 2, 10, 10, 10), now=24.0)
    assert progress.bar.full_text == "50% · elapsed 0:20 · ETA 0:20"
    progress.phase_finished("teacher", 24.0)
    assert progress.phase_bars["teacher"].bar.full_text == "done in 0:20"


def test_a_cached_teacher_costs_no_time(progress: RunProgress) -> None:
    plan = RunPlan((PhasePlan("teacher", 0, 0), PhasePlan("student", 1, 10)))
    progress.start(plan, started=0.0)
    assert progress.phase_bars["teacher"].bar.full_text == "loaded, no training"
    progress.phase_started("student", 0.0)
    progress.show_step(Step(run_id=1, phase="student", epoch=1, epochs=1, step=5, steps=10,
                            run_step=5, run_steps=10, values={}), now=5.0)
    assert progress.bar.full_text == "50% · elapsed 0:05 · ETA 0:05"


def test_a_completed_run_fills_the_run_bar(progress: RunProgress) -> None:
    progress.begin(["student"])
    progress.start(RunPlan((PhasePlan("student", 1, 4),)), started=50.0)
    progress.show_step(step("student", 1, 1, 4, 4, 4), now=58.0)
    assert progress.bar.full_text == "100% · elapsed 0:08 · ETA 0:00"
    assert progress.finish("completed", now=59.0) == "0:09"
    assert progress.bar.value() == progress.bar.maximum()
    assert progress.bar.full_text == "completed after 0:09"


def test_a_real_run_paused_from_the_window_stops_its_clock(qtbot, window) -> None:
    """Real engine in a real QThread: Pause freezes elapsed time, Resume brings the ETA back."""
    from tests.gui.test_gui_runs import click, start_long_run

    start_long_run(qtbot, window)
    progress = window.live.run_progress
    window.live.drain()
    assert "elapsed" in progress.bar.full_text and "ETA" in progress.bar.full_text
    click(qtbot, window, "pauseButton")
    qtbot.waitUntil(window.controller.flags.blocked.is_set, timeout=2_000)
    window.live.drain()
    assert progress.bar.full_text.endswith("· paused")
    held = progress.elapsed(time.monotonic())
    qtbot.wait(400)
    assert progress.elapsed(time.monotonic()) == pytest.approx(held, abs=0.05)
    click(qtbot, window, "pauseButton")  # resume
    qtbot.wait(200)
    window.live.drain()
    assert " · ETA " in progress.bar.full_text
    assert progress.elapsed(time.monotonic()) < held + 0.5
    with qtbot.waitSignal(window.run_finished, timeout=5_000):
        click(qtbot, window, "stopButton")


def test_a_narrow_bar_shows_the_longest_text_that_fits_and_the_rest_in_its_tooltip(qtbot):
    from kdstudio.gui.widgets.fitted_bar import TEXT_MARGIN_PX, FittedBar

    bar = FittedBar("Progress of the whole run")
    qtbot.addWidget(bar)
    bar.resize(400, 24)
    bar.show()
    texts = ("70% · elapsed 0:11 · ETA 0:02", "70% · ETA 0:02", "70%")
    bar.set_texts(*texts)
    assert bar.format() == texts[0] and bar.toolTip() == "Progress of the whole run"
    metrics = bar.fontMetrics()
    for width, shown in ((metrics.horizontalAdvance(texts[1]) + TEXT_MARGIN_PX, texts[1]),
                         (metrics.horizontalAdvance(texts[2]) + TEXT_MARGIN_PX, texts[2])):
        bar.resize(width, 24)  # a resize picks the text again
        assert bar.format() == shown and bar.full_text == texts[0]
        assert bar.toolTip() == f"{texts[0]}\nProgress of the whole run"
        assert metrics.horizontalAdvance(bar.format()) <= bar.width() - TEXT_MARGIN_PX
    bar.resize(400, 24)
    assert bar.format() == texts[0] and bar.toolTip() == "Progress of the whole run"
