"""TimeEstimate: progress and ETA by measured time, pauses left out."""

import pytest

from kdstudio.core.progress import TimeEstimate


def test_pause_leaves_eta_unchanged() -> None:
    est = TimeEstimate({"student": 10})
    est.phase_started("student", 0.0)
    est.step("student", 5, 10.0)
    assert est.left() == pytest.approx(10.0)
    est.pause(10.0)
    est.resume(14.0)
    est.step("student", 6, 16.0)
    assert est.left() == pytest.approx(4 * 2.0)


def test_slow_phase_weighted_and_fraction_by_time() -> None:
    est = TimeEstimate({"teacher": 10, "student": 10}, step_cost={"teacher": 3.0, "student": 1.0})
    est.phase_started("teacher", 0.0)
    est.step("teacher", 10, 30.0)  # 3 s a step
    assert est.phase_left("student") == pytest.approx(10.0)  # 1 s a step by the cost ratio
    assert est.fraction_done() == pytest.approx(0.75)  # half the steps, 3/4 of the time


def test_cached_teacher_costs_nothing() -> None:
    est = TimeEstimate({"teacher": 0, "student": 4})
    assert est.phase_left("teacher") == 0.0
    assert est.left() is None
