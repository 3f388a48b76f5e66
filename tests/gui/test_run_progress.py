"""The run view's progress bars: percentages, ETA and how a run ended, from plain events."""

from __future__ import annotations

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
    assert progress.bar.format() == "preparing data and models…"
    assert progress.phase_bars["baseline"].bar.format() == "not in this run"
    assert progress.phase_bars["teacher"].bar.format() == "waiting"

    progress.start(PLAN, started=100.0)
    assert progress.run_steps == 20
    assert progress.bar.maximum() == 20 and progress.bar.format() == "0%"
    assert progress.phase_bars["teacher"].bar.maximum() == 10

    progress.phase_started("teacher", 100.0)
    progress.show_step(step("teacher", 1, 2, 5, 10, 5), now=130.0)
    teacher = progress.phase_bars["teacher"]
    assert progress.bar.value() == 5
    assert progress.bar.format() == "25% · ETA 1:30"  # 30 s for a quarter of the run
    assert teacher.bar.format() == "50% · ETA 0:30"
    assert "epoch 1/2" in teacher.title.text()

    progress.phase_finished("teacher", 160.0)
    assert teacher.bar.value() == 10 and teacher.bar.format() == "done in 1:00"

    progress.phase_started("student", 160.0)
    progress.show_step(step("student", 1, 1, 4, 10, 14), now=180.0)
    assert progress.phase_bars["student"].bar.format() == "40% · ETA 0:30"
    assert progress.finish("stopped", now=4000.0) == "1:05:00"
    assert progress.bar.format() == "stopped after 1:05:00"
    assert progress.bar.value() == 14  # a stopped run keeps where it got to
    assert progress.phase_bars["student"].bar.format() == "40% · stopped"
    assert teacher.bar.format() == "done in 1:00"


def test_a_completed_run_fills_the_run_bar(progress: RunProgress) -> None:
    progress.begin(["student"])
    progress.start(RunPlan((PhasePlan("student", 1, 4),)), started=50.0)
    progress.show_step(step("student", 1, 1, 4, 4, 4), now=58.0)
    assert progress.bar.format() == "100% · ETA 0:00"
    assert progress.finish("completed", now=59.0) == "0:09"
    assert progress.bar.value() == progress.bar.maximum() == 4
    assert progress.bar.format() == "completed after 0:09"
