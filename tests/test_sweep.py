"""Sweeps: the sweep file, grid and random expansion, and real sweeps of tiny runs in
trial processes (local pool and Ray), one killed with SIGKILL, then the sweep run again."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from kdstudio.cli import main
from kdstudio.core.config import config_from_dict, save_toml
from kdstudio.core.engine import run as engine_run
from kdstudio.core.store import Store
from kdstudio.core.sweep import (
    SweepStarted,
    TrialFinished,
    TrialStarted,
    group_id,
    plan_trials,
    read_sweep,
    run_sweep,
    sweep_from_dict,
    sweep_to_dict,
)
from tests.helpers import tiny_config


def write_base(tmp_path: Path) -> Path:
    """A run of about a second: 900 synthetic points, MLP 32 teacher, MLP 8 student."""
    config = tiny_config()
    config.data.params = {"samples": 900, "dims": 6, "classes": 3, "separation": 1.0}
    config.optim.epochs = 4
    path = tmp_path / "base.toml"
    save_toml(config, path)
    return path


def write_sweep(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(f'base = "base.toml"\n{text}', encoding="utf-8")
    return path


FOUR = '[axes]\n"distill.temperature" = [2.0, 4.0]\nseed = [0, 1]\n'


@pytest.mark.parametrize(("text", "message"), [
    ('base = "x"\ncolour = 1\n[axes]\nseed = [0]', "sweep.toml: colour: unknown key"),
    ('base = "x"\n[axes]\n"distill.temprature" = [1.0]',
     "sweep.toml: axes.distill.temprature: not a config key"),
    ('base = "x"\n[axes]\nseed = []', "sweep.toml: axes.seed: must be a non-empty list"),
    ('base = "x"\n[axes]\n"optim" = [1]', "sweep.toml: axes.optim: is a table, not a value"),
    ('base = "x"\nmethod = "random"\n[axes]\nseed = [0, 1]',
     'sweep.toml: trials: must be >= 1 for method = "random"'),
    ('base = "x"\nmethod = "optuna"\ntrials = 0\n[axes]\nseed = [0, 1]',
     'sweep.toml: trials: must be >= 1 for method = "optuna"'),
    ('base = "x"\nmetric = "accuracy"\n[axes]\nseed = [0]',
     "sweep.toml: metric: unknown metric 'accuracy'"),
    ('base = "x"\n[axes]\n"distill.temperature" = {low = 1.0, high = 8.0}',
     "sweep.toml: axes.distill.temperature: a grid needs a list of values"),
    ('base = "x"\nmethod = "optuna"\ntrials = 2\n[axes]\n'
     '"distill.temperature" = {low = 8.0, high = 1.0}',
     "sweep.toml: axes.distill.temperature: low must be below high"),
    ('base = "x"\n[axes]\nseed = [0]\n[set]\n"optim.epoch" = 2',
     "sweep.toml: set.optim.epoch: not a config key"),
])
def test_a_bad_sweep_file_is_one_line_naming_the_file_and_key(tmp_path: Path, text: str,
                                                               message: str) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        read_sweep(path)
    assert str(raised.value).startswith(str(tmp_path / message.split(":")[0]))
    assert message.split(": ", 1)[1] in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_grid_is_every_combination_in_file_order_and_random_is_seeded() -> None:
    spec = sweep_from_dict({"base": "digits-kd", "axes": {
        "distill": {"temperature": [2.0, 4.0, 8.0]}, "seed": [0, 1]}})
    trials = plan_trials(spec)
    assert [t.overrides for t in trials[:3]] == [
        {"distill.temperature": 2.0, "seed": 0}, {"distill.temperature": 2.0, "seed": 1},
        {"distill.temperature": 4.0, "seed": 0}]
    assert len(trials) == 6 and [t.index for t in trials] == list(range(6))
    random_spec = sweep_from_dict({"base": "digits-kd", "method": "random", "trials": 5,
                                   "seed": 7, "axes": {
                                       "distill.temperature": {"low": 1.0, "high": 8.0},
                                       "optim.lr": {"low": 1e-4, "high": 1e-1, "log": True},
                                       "optim.epochs": {"low": 2, "high": 5},
                                       "seed": [0, 1, 2]}})
    drawn = plan_trials(random_spec)
    assert drawn == plan_trials(random_spec) and len(drawn) == 5
    assert len({t.overrides["distill.temperature"] for t in drawn}) == 5
    for trial in drawn:
        assert 1.0 <= trial.overrides["distill.temperature"] <= 8.0
        assert 1e-4 <= trial.overrides["optim.lr"] <= 1e-1
        assert trial.overrides["optim.epochs"] in range(2, 6)
        assert trial.overrides["seed"] in (0, 1, 2)
    again = sweep_from_dict(sweep_to_dict(spec))
    assert group_id(again) == group_id(spec)
    spec.axes["seed"] = [0, 1, 2]
    assert group_id(again) != group_id(spec)


def rows(db: Path, gid: str) -> list[dict[str, Any]]:
    with Store(db) as store:
        return store.runs_in_group(gid)


def test_a_killed_trial_fails_the_others_complete_and_a_rerun_does_only_it(
        tmp_path: Path) -> None:
    write_base(tmp_path)
    spec = read_sweep(write_sweep(tmp_path, FOUR))
    db = tmp_path / "h.db"
    events: list[Any] = []
    killed: list[int] = []

    def on_event(event: Any) -> None:
        events.append(event)
        if isinstance(event, TrialStarted) and event.index == 3:  # its row exists, running
            row = next(run for run in rows(db, group_id(spec)) if run["id"] == event.run_id)
            assert (row["pid"], row["status"]) == (event.pid, "running")
            os.kill(event.pid, signal.SIGKILL)
            killed.append(event.run_id)

    result = run_sweep(spec, db, workers=2, on_event=on_event)
    runs = rows(db, result.group_id)
    assert (result.completed, result.failed, result.stopped) == (3, 1, 0)
    assert len(runs) == 4 and {run["group_id"] for run in runs} == {result.group_id}
    by_status = {run["id"]: run["status"] for run in runs}
    assert by_status[killed[0]] == "failed"
    assert sorted(by_status.values()) == ["completed"] * 3 + ["failed"]
    dead = next(run for run in runs if run["id"] == killed[0])
    assert dead["error"] == "trial process died (signal 9)"
    pids = {run["pid"] for run in runs}  # two worker processes, one a trial at a time
    assert len(pids) >= 2 and os.getpid() not in pids
    finished = [e for e in events if isinstance(e, TrialFinished)]
    assert sorted(e.status for e in finished) == ["completed"] * 3 + ["failed"]
    assert all(e.value is not None and 0 < e.value <= 1 for e in finished
               if e.status == "completed")
    # the teacher was trained once; the other trials loaded that run's teacher file
    trained = [run for run in runs if run["config"]["teacher"]["epochs"] > 0]
    assert len(trained) == 1
    teacher_file = str(tmp_path / "h-artifacts" / f"run-{trained[0]['id']}"
                       / "teacher.safetensors")
    for run in runs:
        if run is not trained[0]:
            assert run["config"]["teacher"]["checkpoint"] == teacher_file
            if run["seed"] == trained[0]["seed"]:  # the same split and normalisation
                assert run["teacher_test_acc"] == trained[0]["teacher_test_acc"]
    before = {run["id"]: (run["finished_at"], run["summary"]) for run in runs
              if run["status"] == "completed"}

    events.clear()
    again = run_sweep(read_sweep(tmp_path / "sweep.toml"), db, workers=2,
                      on_event=events.append)
    assert again.group_id == result.group_id
    assert isinstance(events[0], SweepStarted) and events[0].skipped == 3
    assert [e.index for e in events if isinstance(e, TrialFinished)] == [3]
    after = rows(db, result.group_id)
    assert len(after) == 5
    assert {run["id"]: (run["finished_at"], run["summary"]) for run in after
            if run["id"] in before} == before
    new = after[-1]
    assert new["status"] == "completed" and new["seed"] == 1
    assert new["temperature"] == 4.0 and new["config"]["teacher"]["checkpoint"] == teacher_file
    assert (again.completed, again.failed) == (4, 0) and len(again.run_ids) == 4


def test_trials_train_their_baseline_while_the_teacher_is_trained_and_record_the_same(
        tmp_path: Path) -> None:
    config = tiny_config()
    config.data.params = {"samples": 900, "dims": 6, "classes": 3, "separation": 1.0}
    config.teacher.epochs = 300  # about 2 s: the other trials start meanwhile
    save_toml(config, tmp_path / "base.toml")
    spec = read_sweep(write_sweep(tmp_path, "[axes]\nseed = [0, 1, 2]\n"))
    db = tmp_path / "h.db"
    result = run_sweep(spec, db, workers=2)
    assert (result.completed, result.failed) == (3, 0)
    runs = rows(db, result.group_id)
    owner = next(run for run in runs if run["config"]["teacher"]["epochs"] > 0)
    with Store(db) as store:
        logs = {run["id"]: [line["message"] for line in store.logs(run["id"])] for run in runs}
        early = [run for run in runs
                 if f"Waiting for run {owner['id']}'s teacher" in logs[run["id"]]]
        assert early and owner not in early and len(runs) == 3
        for run in early:
            lines = logs[run["id"]]
            wait = lines.index(f"Waiting for run {owner['id']}'s teacher")
            assert lines[wait - 1].startswith("Baseline (student alone) test accuracy")
            assert lines[wait + 1].startswith(f"Run {owner['id']}'s teacher came after ")
            assert run["config"]["teacher"]["checkpoint"] == str(
                store.artifact_dir(owner["id"]) / "teacher.safetensors")
        # what a trial started early recorded is what it records with the file there
        again, problems = config_from_dict(early[0]["config"])
        assert not problems
        plain = engine_run(again, store)
        assert plain.status == "completed"
        assert figures(store, plain.run_id) == figures(store, early[0]["id"])


def test_when_the_teacher_trial_dies_a_trial_waiting_for_it_goes_back_to_the_queue(
        tmp_path: Path) -> None:
    config = tiny_config()
    config.data.params = {"samples": 900, "dims": 6, "classes": 3, "separation": 1.0}
    config.teacher.epochs = 300
    save_toml(config, tmp_path / "base.toml")
    spec = read_sweep(write_sweep(tmp_path, "[axes]\nseed = [0, 1, 2]\n"))
    db = tmp_path / "h.db"
    pids: dict[int, int] = {}

    def on_event(event: Any) -> None:
        if isinstance(event, TrialStarted) and event.pid is not None:
            pids.setdefault(event.index, event.pid)
            if event.index == 1 and len(pids) == 2:  # it started while 0 trains the teacher
                os.kill(pids[0], signal.SIGKILL)

    result = run_sweep(spec, db, workers=2, on_event=on_event)
    assert (result.completed, result.failed) == (2, 1)
    runs = rows(db, result.group_id)
    first = runs[0]
    assert first["status"] == "failed" and first["error"] == "trial process died (signal 9)"
    gave_up = [run for run in runs if (run["error"] or "").startswith("TeacherUnavailable")]
    assert len(gave_up) == 1 and gave_up[0]["seed"] == 1
    assert gave_up[0]["error"] == ("TeacherUnavailable: the sweep's teacher was not trained: "
                                   f"run {first['id']} ended failed (trial process died "
                                   "(signal 9))")
    completed = sorted(run["seed"] for run in runs if run["status"] == "completed")
    assert completed == [1, 2] and len(runs) == 4
    assert sorted(result.run_ids) == sorted(r["id"] for r in runs if r is not gave_up[0])


def figures(store: Store, run_id: int) -> list[tuple[Any, ...]]:
    return sorted((r["phase"], r["step"], r["epoch"], r["name"], r["value"])
                  for r in store.metrics(run_id) if r["name"] != "samples_per_s")


def test_a_stopped_sweep_starts_nothing_more_and_its_running_trial_ends_stopped(
        tmp_path: Path) -> None:
    write_base(tmp_path)
    spec = read_sweep(write_sweep(tmp_path, '[axes]\n"distill.kd_weight" = [0.5, 1.0]\n'))
    started: list[TrialStarted] = []

    def on_event(event: Any) -> None:
        if isinstance(event, TrialStarted):
            started.append(event)

    result = run_sweep(spec, tmp_path / "h.db", workers=2, on_event=on_event,
                       should_stop=lambda: bool(started))
    runs = rows(tmp_path / "h.db", result.group_id)
    assert [run["status"] for run in runs] == ["stopped"]
    assert (result.completed, result.failed, result.stopped) == (0, 0, 1)


def test_the_sweep_command_runs_optuna_on_a_range_and_ranks_the_trials(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("optuna")
    write_base(tmp_path)
    sweep = write_sweep(tmp_path, 'method = "optuna"\ntrials = 3\nmetric = "kd_gain"\n'
                                  '[axes]\n"distill.temperature" = {low = 1.0, high = 8.0}\n'
                                  '"distill.kd_weight" = [0.5, 0.9]\n')
    db = tmp_path / "h.db"
    assert main(["sweep", str(sweep), "--db", str(db), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count(" completed ") == 3 and "Ranked by kd_gain" in out
    runs = rows(db, group_id(read_sweep(sweep)))
    assert [run["status"] for run in runs] == ["completed"] * 3
    assert all(1.0 <= run["temperature"] <= 8.0 for run in runs)
    assert len({run["temperature"] for run in runs}) == 3
    # run again: the 3 completed trials are told to the study, nothing new runs
    assert main(["sweep", str(sweep), "--db", str(db)]) == 0
    assert "3 completed earlier (skipped)" in capsys.readouterr().out
    assert len(rows(db, group_id(read_sweep(sweep)))) == 3


def test_the_sweep_command_refuses_a_bad_file_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_base(tmp_path)
    sweep = write_sweep(tmp_path, '[axes]\n"optim.epochs" = [2, -1]\n')
    assert main(["sweep", str(sweep), "--db", str(tmp_path / "h.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"kdstudio: {sweep}: trial 1 (optim.epochs=-1): optim.epochs")


def test_the_same_sweep_on_a_local_ray_instance_completes_all_four(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    write_base(tmp_path)
    spec = read_sweep(write_sweep(tmp_path, FOUR))
    result = run_sweep(spec, tmp_path / "h.db", workers=2, backend="ray")
    runs = rows(tmp_path / "h.db", result.group_id)
    assert (result.completed, result.failed) == (4, 0)
    assert [run["status"] for run in runs] == ["completed"] * 4
    assert len([run for run in runs if run["config"]["teacher"]["epochs"] > 0]) == 1
