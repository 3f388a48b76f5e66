"""Replaying a saved run from the history gives the events the engine emitted live."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kdstudio.core.engine import run
from kdstudio.core.events import (
    Epoch,
    Event,
    Log,
    PhaseFinished,
    PhaseStarted,
    PhaseTested,
    RunFinished,
    RunStarted,
    Step,
)
from kdstudio.core.replay import replay_events
from kdstudio.core.store import Store
from tests.helpers import tiny_config


def _knowable(event: Event) -> Event:
    """The event with the fields only a live run knows (model and data sizes, class names)
    blanked: everything else replay rebuilds exactly."""
    if isinstance(event, RunStarted):
        return dataclasses.replace(event, sizes={}, data={}, class_names=[], replay=False)
    return event


def test_a_completed_run_replays_the_same_events_it_emitted(tmp_path: Path) -> None:
    live: list[Event] = []
    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(), store, live.append)
        replayed = replay_events(store, result.run_id)
    events = [event for _, event in replayed]
    assert isinstance(events[0], RunStarted) and events[0].replay
    assert isinstance(events[1], Log) and events[1].message.startswith("Replayed from the")
    # the same classes with the same fields, in the same order, log lines among the rest
    assert [_knowable(e) for e in events[:1] + events[2:]] == [_knowable(e) for e in live]
    kinds = {type(e) for e in live}
    assert kinds == {RunStarted, PhaseStarted, Step, Epoch, PhaseFinished, Log, PhaseTested,
                     RunFinished}
    assert sum(not isinstance(e, Log) for e in live) > 40
    times = [when for when, _ in replayed]
    assert times == sorted(times)  # in the order and at the times they were written
    finished = events[-1]
    assert isinstance(finished, RunFinished) and finished.status == "completed"
    assert finished.summary["student_test_acc"] == result.summary["student_test_acc"]
    started = live[0]
    assert isinstance(started, RunStarted)  # what only the live start carries
    assert started.sizes["student_params"] > 0 and started.data["train"] > 0
    assert started.class_names and not started.replay


def test_a_stopped_run_replays_up_to_where_it_stopped(tmp_path: Path) -> None:
    live: list[Event] = []

    def stop_in_the_baseline() -> bool:  # steps arrive in batches: stop after the first
        return any(isinstance(e, Step) and e.phase == "baseline" for e in live[-3:])

    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(), store, live.append, stop_in_the_baseline)
        assert result.status == "stopped"
        replayed = [e for _, e in replay_events(store, result.run_id)]
    phases = [(type(e), e.phase) for e in replayed
              if isinstance(e, (PhaseStarted, PhaseFinished))]
    assert phases == [(PhaseStarted, "teacher"), (PhaseFinished, "teacher"),
                      (PhaseStarted, "baseline")]
    baseline_steps = [e.step for e in replayed if isinstance(e, Step) and e.phase == "baseline"]
    live_steps = [e.step for e in live if isinstance(e, Step) and e.phase == "baseline"]
    assert baseline_steps == live_steps == list(range(1, len(live_steps) + 1))
    live_start, started = live[0], replayed[0]
    assert isinstance(live_start, RunStarted) and isinstance(started, RunStarted)
    assert 0 < len(baseline_steps) < live_start.plan["baseline"].steps
    # the whole plan, as the live run had it: the progress was a few of run_steps steps
    assert started.plan == live_start.plan
    assert started.run_steps == live_start.run_steps
    assert started.plan.names == ["teacher", "baseline", "student"]
    expected = [_knowable(e) for e in live if not isinstance(e, (Log, RunFinished))]
    assert [_knowable(e) for e in replayed[:-1] if not isinstance(e, Log)] == expected
    assert isinstance(replayed[-1], RunFinished) and replayed[-1].status == "stopped"


def test_runs_saved_without_a_plan_are_worked_out_from_config_and_rows(tmp_path: Path) -> None:
    live: list[Event] = []
    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(), store, live.append)
        store.db.execute("UPDATE runs SET plan = NULL WHERE id = ?", [result.run_id])
        replayed = [e for _, e in replay_events(store, result.run_id)]
    assert isinstance(replayed[0], RunStarted) and isinstance(live[0], RunStarted)
    assert replayed[0].plan == live[0].plan
    steps = [(e.phase, e.run_step) for e in replayed if isinstance(e, Step)]
    assert steps == [(e.phase, e.run_step) for e in live if isinstance(e, Step)]


def test_an_unknown_run_is_a_key_error(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store, pytest.raises(KeyError):
        replay_events(store, 42)


def test_a_run_with_a_loaded_teacher_replays_as_emitted(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        first = run(tiny_config(), store)
        config = tiny_config()
        config.teacher.checkpoint = store.artifacts(first.run_id, "teacher")[0]["path"]
        live: list[Event] = []
        result = run(config, store, live.append)
        replayed = replay_events(store, result.run_id)
    expected = [_knowable(e) for e in live if not isinstance(e, Log)]
    teacher_epoch = expected[1]
    assert isinstance(teacher_epoch, Epoch)  # its validation figures only
    assert (teacher_epoch.phase, teacher_epoch.epoch, teacher_epoch.epochs,
            teacher_epoch.step) == ("teacher", 0, 0, 0)
    assert [_knowable(e) for _, e in replayed if not isinstance(e, Log)] == expected
