"""Replaying a saved run from the history gives the events the engine emitted live."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdstudio.core.engine import run
from kdstudio.core.replay import replay_events
from kdstudio.core.store import Store
from tests.helpers import tiny_config


def _comparable(event: dict) -> tuple:
    kind = event["type"]
    if kind == "step":
        return (kind, event["phase"], event["epoch"], event["epochs"], event["step"],
                event["steps"], event["run_step"], event["run_steps"], event["values"])
    if kind == "epoch":
        return (kind, event["phase"], event["epoch"], event["epochs"], event["step"],
                event["values"])
    if kind == "phase":
        return (kind, event["phase"], event["state"])
    if kind == "run_started":
        return (kind, event["run_id"], event["name"], event["phases"], event["run_steps"])
    if kind == "run_finished":
        return (kind, event["status"], event["error"], event["summary"])
    return (kind,)


def test_a_completed_run_replays_as_it_was_emitted(tmp_path: Path) -> None:
    live: list[dict] = []
    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(), store, live.append)
        replayed = replay_events(store, result.run_id)
    expected = [_comparable(e) for e in live if e["type"] != "log"]
    got = [_comparable(e) for _, e in replayed if e["type"] != "log"]
    assert len(expected) > 40
    assert got == expected
    times = [when for when, _ in replayed]
    assert times == sorted(times)  # in the order and at the times they were written
    assert replayed[-1][1]["summary"]["student_test_acc"] == result.summary["student_test_acc"]
    logs = [(e["level"], e["message"]) for _, e in replayed if e["type"] == "log"]
    assert logs[0][1].startswith("Replayed from the history")
    assert logs[1:] == [(e["level"], e["message"]) for e in live if e["type"] == "log"]
    # the log lines sit among the other events where they were emitted
    every = [_comparable(e) + ((e["message"],) if e["type"] == "log" else ())
             for e in live]
    assert [_comparable(e) + ((e["message"],) if e["type"] == "log" else ())
            for _, e in replayed[:1] + replayed[2:]] == every


def test_a_stopped_run_replays_up_to_where_it_stopped(tmp_path: Path) -> None:
    live: list[dict] = []

    def stop_in_the_baseline() -> bool:  # steps arrive in batches: stop after the first
        return any(e["type"] == "step" and e["phase"] == "baseline" for e in live[-3:])

    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(), store, live.append, stop_in_the_baseline)
        assert result.status == "stopped"
        replayed = [e for _, e in replay_events(store, result.run_id)]
    phases = [(e["phase"], e["state"]) for e in replayed if e["type"] == "phase"]
    assert phases == [("teacher", "started"), ("teacher", "finished"), ("baseline", "started")]
    baseline_steps = [e["step"] for e in replayed if e["type"] == "step"
                      and e["phase"] == "baseline"]
    live_steps = [e["step"] for e in live if e["type"] == "step" and e["phase"] == "baseline"]
    assert baseline_steps == live_steps == list(range(1, len(live_steps) + 1))
    assert 0 < len(baseline_steps) < live[0]["phases"][1]["steps"]
    started = replayed[0]  # the whole plan, as the live run had it: the progress was a few
    assert started["phases"] == live[0]["phases"]  # of run_steps steps when it stopped
    assert started["run_steps"] == live[0]["run_steps"]
    assert [p["name"] for p in started["phases"]] == ["teacher", "baseline", "student"]
    expected = [_comparable(e) for e in live if e["type"] not in ("log", "run_finished")]
    assert [_comparable(e) for e in replayed[:-1] if e["type"] != "log"] == expected
    assert replayed[-1]["type"] == "run_finished" and replayed[-1]["status"] == "stopped"


def test_runs_saved_without_a_plan_are_worked_out_from_config_and_rows(tmp_path: Path) -> None:
    live: list[dict] = []
    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(), store, live.append)
        store.db.execute("UPDATE runs SET plan = NULL WHERE id = ?", [result.run_id])
        replayed = [e for _, e in replay_events(store, result.run_id)]
    assert replayed[0]["phases"] == live[0]["phases"]
    steps = [(e["phase"], e["run_step"]) for e in replayed if e["type"] == "step"]
    assert steps == [(e["phase"], e["run_step"]) for e in live if e["type"] == "step"]


def test_an_unknown_run_is_a_key_error(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store, pytest.raises(KeyError):
        replay_events(store, 42)


def test_a_run_with_a_loaded_teacher_replays_as_emitted(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        first = run(tiny_config(), store)
        config = tiny_config()
        config.teacher.checkpoint = store.artifacts(first.run_id, "teacher")[0]["path"]
        live: list[dict] = []
        result = run(config, store, live.append)
        replayed = replay_events(store, result.run_id)
    expected = [_comparable(e) for e in live if e["type"] != "log"]
    assert expected[1][:5] == ("epoch", "teacher", 0, 0, 0)  # its validation figures only
    assert [_comparable(e) for _, e in replayed if e["type"] != "log"] == expected
