"""Resume: a stopped or interrupted run goes on from its last finished epoch, in its own row,
and ends with exactly the metrics, test accuracies and student weights of a run that never
stopped (CPU, same seed). Stops in each phase, mid-epoch and at epoch boundaries; a method
with trainable adapters, CRD with its memory bank on a two-stream transfer set, a cosine
schedule; a real `kdstudio run` killed by SIGKILL and resumed by a new process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from kdstudio.core.config import RunConfig, save_toml
from kdstudio.core.engine import RunResult, loop, resume, run
from kdstudio.core.events import Event, Log, RunStarted, Step
from kdstudio.core.resume import (
    CHECKPOINT_NAME,
    META_KEY,
    CheckpointWriter,
    PackedState,
    ResumeRefused,
)
from kdstudio.core.store import Store
from tests.helpers import tiny_config
from tests.reliability.conftest import assert_no_traceback, cli_env, run_cli

WALL_TIME_METRICS = {"samples_per_s"}  # depend on the clock, not on the training


def kd_cosine() -> RunConfig:
    config = tiny_config()
    config.optim.schedule = "cosine"
    config.teacher.epochs = 3
    config.optim.epochs = 3
    return config


def fitnets_dropout() -> RunConfig:
    """A trainable hint adapter, momentum SGD with a step schedule, and a dropout teacher
    (draws from torch's global generator every step)."""
    config = tiny_config(method="fitnets", student_layer="hidden1", teacher_layer="hidden1",
                         feature_weight=0.5)
    config.teacher.params = {"hidden_sizes": [32], "dropout": 0.2}
    config.optim.name = "sgd"
    config.optim.schedule = "step"
    config.optim.step_size = 1
    config.optim.gamma = 0.5
    config.optim.epochs = 3
    return config


def crd_two_streams() -> RunConfig:
    """CRD's memory bank and its own generator of negatives, CE on 12 labelled examples and
    the contrastive term on all training inputs (two streams, labelled batches cycling)."""
    config = tiny_config(method="crd", kd_weight=0.0, feature_weight=0.8,
                         params={"feat_dim": 16, "negatives": 32})
    config.data.transfer = "all"
    config.data.label_count = 12
    config.data.batch_size = 16
    config.optim.schedule = "cosine"
    config.optim.epochs = 3
    config.teacher.epochs = 1
    return config


CONFIGS: dict[str, Callable[[], RunConfig]] = {
    "kd-cosine": kd_cosine, "fitnets": fitnets_dropout, "crd-two-streams": crd_two_streams}


def stop_after(steps: int) -> Callable[[], bool]:
    """should_stop for `run`: lets `steps` optimisation steps run, then says stop."""
    calls = [0]

    def should_stop() -> bool:
        calls[0] += 1
        return calls[0] > steps

    return should_stop


def metric_rows(store: Store, run_id: int) -> list[tuple]:
    """Every metric row that does not depend on the clock, in a canonical order."""
    return sorted((row["phase"], row["step"], row["epoch"], row["name"], row["value"])
                  for row in store.metrics(run_id) if row["name"] not in WALL_TIME_METRICS)


def student_weights(store: Store, run_id: int) -> dict[str, torch.Tensor]:
    return load_file(str(store.artifact_dir(run_id) / "student.safetensors"))


def test_accuracies(summary: dict) -> dict[str, float]:
    return {key: value for key, value in summary.items() if key.endswith("_test_acc")}


test_accuracies.__test__ = False  # a helper, not a test


def assert_same_as_uninterrupted(store: Store, resumed: RunResult, reference: RunResult,
                                 reference_store: Store) -> None:
    assert resumed.status == "completed", resumed.error
    assert metric_rows(store, resumed.run_id) == metric_rows(reference_store, reference.run_id)
    assert test_accuracies(resumed.summary) == test_accuracies(reference.summary)
    assert len(test_accuracies(resumed.summary)) == 3
    ours = student_weights(store, resumed.run_id)
    theirs = student_weights(reference_store, reference.run_id)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> Callable[[str], tuple[Store, RunResult]]:
    """The uninterrupted run of each config, run once for the module."""
    folder = tmp_path_factory.mktemp("reference")
    store = Store(folder / "reference.db")
    done: dict[str, RunResult] = {}

    def reference(name: str) -> tuple[Store, RunResult]:
        if name not in done:
            done[name] = run(CONFIGS[name](), store)
            assert done[name].status == "completed", done[name].error
        return store, done[name]

    yield reference
    store.close()


def plan_of(store: Store, run_id: int) -> dict[str, dict]:
    return {phase["name"]: phase for phase in store.get_run(run_id)["plan"]}


def steps_before(plan: dict[str, dict], phase: str, epoch_fraction: float) -> int:
    """Run steps before a point `epoch_fraction` epochs into `phase` (1.0: the end of its
    first epoch)."""
    before = 0
    for name in ("teacher", "baseline", "student"):
        if name == phase:
            per_epoch = plan[name]["steps"] // plan[name]["epochs"]
            return before + round(per_epoch * epoch_fraction)
        before += plan.get(name, {"steps": 0})["steps"]
    raise AssertionError(phase)


# (config, phase, epochs into the phase at which should_stop says stop)
STOPS = [
    ("kd-cosine", "teacher", 1.5),  # mid-epoch
    ("kd-cosine", "teacher", 2.0),  # at an epoch boundary
    ("kd-cosine", "baseline", 0.0),  # at the boundary between two phases
    ("kd-cosine", "baseline", 2.4),
    ("kd-cosine", "student", 1.0),
    ("kd-cosine", "student", 2.6),  # in the last epoch of the run
    ("fitnets", "teacher", 1.5),
    ("fitnets", "baseline", 1.0),
    ("fitnets", "student", 1.5),
    ("fitnets", "student", 2.0),
    ("crd-two-streams", "teacher", 0.5 + 1),  # (the teacher has one epoch: stops in baseline)
    ("crd-two-streams", "baseline", 1.5),
    ("crd-two-streams", "student", 1.3),
    ("crd-two-streams", "student", 2.0),
]


@pytest.mark.parametrize(("config_name", "phase", "epochs_in"), STOPS,
                         ids=[f"{c}-{p}-{e}" for c, p, e in STOPS])
def test_a_resumed_run_ends_exactly_as_an_uninterrupted_one(tmp_path, references,
                                                            config_name, phase, epochs_in):
    reference_store, reference = references(config_name)
    stop_at = steps_before(plan_of(reference_store, reference.run_id), phase, epochs_in)
    with Store(tmp_path / "history.db") as store:
        stopped = run(CONFIGS[config_name](), store, should_stop=stop_after(stop_at))
        assert stopped.status == "stopped"
        assert store.get_run(stopped.run_id)["status"] == "stopped"
        written = len(store.metrics(stopped.run_id))
        events: list[Event] = []
        resumed = resume(stopped.run_id, store, events.append)
        assert resumed.run_id == stopped.run_id
        assert [r["id"] for r in store.list_runs()] == [stopped.run_id]  # the same row
        row = store.get_run(stopped.run_id)
        assert row["status"] == "completed" and row["pid"] == os.getpid()
        assert len(store.metrics(stopped.run_id)) > written
        started = events[0]
        assert isinstance(started, RunStarted) and started.resumed is not None
        assert started.resumed.phase in ("teacher", "baseline", "student")
        assert_same_as_uninterrupted(store, resumed, reference, reference_store)
        kinds = sorted(a["kind"] for a in store.artifacts(stopped.run_id))
        assert kinds == ["baseline", "student", "teacher"]  # one of each, none doubled
        assert not (store.artifact_dir(stopped.run_id) / CHECKPOINT_NAME).exists()


def test_a_run_stopped_twice_and_resumed_twice_still_matches(tmp_path, references):
    reference_store, reference = references("crd-two-streams")
    plan = plan_of(reference_store, reference.run_id)
    with Store(tmp_path / "history.db") as store:
        first = run(crd_two_streams(), store,
                    should_stop=stop_after(steps_before(plan, "baseline", 1.5)))
        again = resume(first.run_id, store,
                       should_stop=stop_after(steps_before(plan, "student", 0.5)
                                              - steps_before(plan, "baseline", 1.0)))
        assert again.status == "stopped" and again.run_id == first.run_id
        assert store.get_run(first.run_id)["status"] == "stopped"
        resumed = resume(first.run_id, store)
        assert_same_as_uninterrupted(store, resumed, reference, reference_store)


def read_checkpoint_meta(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()[META_KEY])


def test_every_epoch_end_replaces_the_checkpoint_atomically(tmp_path, monkeypatch):
    config = kd_cosine()
    submitted: list[tuple[str, int]] = []
    seen: list[tuple[str, int]] = []
    real_submit = CheckpointWriter.submit

    def recording_submit(writer: CheckpointWriter, path: Path, packed: PackedState) -> None:
        meta = json.loads(packed.metadata[META_KEY])
        submitted.append((meta["phase"], meta["epochs_done"]))
        real_submit(writer, path, packed)

    monkeypatch.setattr(CheckpointWriter, "submit", recording_submit)
    monkeypatch.setattr(loop, "CHECKPOINT_EVERY_S", 0.0)  # these epochs last milliseconds
    with Store(tmp_path / "history.db") as store:
        checkpoint = store.artifact_dir(1) / CHECKPOINT_NAME

        def on_event(event: Event) -> None:
            if isinstance(event, Step) and checkpoint.exists():
                meta = read_checkpoint_meta(checkpoint)
                seen.append((meta["phase"], meta["epochs_done"]))

        config.keep_checkpoints = True
        result = run(config, store, on_event)
        assert result.run_id == 1 and result.status == "completed"
        meta = read_checkpoint_meta(checkpoint)  # kept: keep_checkpoints = true
        assert (meta["phase"], meta["epochs_done"]) == ("student", 3)
        assert meta["summary"]["teacher_test_acc"] == result.summary["teacher_test_acc"]
        assert not checkpoint.with_name(CHECKPOINT_NAME + ".tmp").exists()
    every_epoch_end = [(phase, epoch) for phase in ("teacher", "baseline", "student")
                       for epoch in (1, 2, 3)]
    assert submitted == every_epoch_end
    # read on disk during the run, at each step: whole checkpoints, never an older one after
    # a newer (one still waiting when a newer came is not written)
    order = sorted(set(seen), key=seen.index)
    assert order == sorted(order, key=every_epoch_end.index)
    assert {phase for phase, _ in order} == {"teacher", "baseline", "student"}


def test_epochs_shorter_than_a_second_share_a_checkpoint_and_phase_ends_write_one(
        tmp_path, monkeypatch):
    submitted: list[tuple[str, int, float]] = []
    real_submit = CheckpointWriter.submit

    def recording_submit(writer: CheckpointWriter, path: Path, packed: PackedState) -> None:
        meta = json.loads(packed.metadata[META_KEY])
        submitted.append((meta["phase"], meta["epochs_done"], time.perf_counter()))
        real_submit(writer, path, packed)

    monkeypatch.setattr(CheckpointWriter, "submit", recording_submit)
    monkeypatch.setattr(loop, "CHECKPOINT_EVERY_S", 3600.0)
    with Store(tmp_path / "history.db") as store:
        assert run(kd_cosine(), store).status == "completed"
    # the run's first epoch end and the phase ends, but not the last phase's end: the
    # completed run deletes its checkpoint at once
    assert [(phase, epochs) for phase, epochs, _ in submitted] == [
        ("teacher", 1), ("teacher", 3), ("baseline", 3)]
    submitted.clear()
    config = kd_cosine()
    config.keep_checkpoints = True  # then the last phase's end writes one too
    with Store(tmp_path / "kept.db") as store:
        assert run(config, store).status == "completed"
    assert [(phase, epochs) for phase, epochs, _ in submitted] == [
        ("teacher", 1), ("teacher", 3), ("baseline", 3), ("student", 3)]
    submitted.clear()
    monkeypatch.setattr(loop, "CHECKPOINT_EVERY_S", 0.05)
    config = kd_cosine()
    config.optim.epochs = 12
    with Store(tmp_path / "again.db") as store:
        assert run(config, store).status == "completed"
    student = [(epochs, at) for phase, epochs, at in submitted if phase == "student"]
    gaps = [later - earlier for (_, earlier), (_, later) in zip(student, student[1:], strict=False)]
    assert student and student[-1][0] < 12 and all(gap >= 0.05 for gap in gaps)


def test_a_checkpoint_that_cannot_be_written_is_said_once_and_training_goes_on(tmp_path):
    """A real write failure: the checkpoint's temporary name is taken by a folder."""
    with Store(tmp_path / "history.db") as store:
        blocked = store.artifact_dir(1) / (CHECKPOINT_NAME + ".tmp")
        blocked.mkdir(parents=True)
        logs: list[Log] = []
        result = run(kd_cosine(), store, lambda e: logs.append(e) if isinstance(e, Log) else 0)
        assert result.status == "completed" and result.error is None
        warnings = [e.message for e in logs if "resumable checkpoint" in e.message]
        assert len(warnings) == 1 and "training goes on" in warnings[0]
        assert not (store.artifact_dir(1) / CHECKPOINT_NAME).exists()
        assert [line["message"] for line in store.logs(1)].count(warnings[0]) == 1


def test_a_completed_run_loses_its_checkpoint_and_cannot_be_resumed(tmp_path):
    with Store(tmp_path / "history.db") as store:
        done = run(tiny_config(), store)
        assert not (store.artifact_dir(done.run_id) / CHECKPOINT_NAME).exists()
        with pytest.raises(ResumeRefused, match=r"run 1 \(tiny\) is completed"):
            resume(done.run_id, store)


def test_refusals_name_the_run_and_change_nothing(tmp_path):
    with Store(tmp_path / "history.db") as store:
        early = run(tiny_config(), store, should_stop=stop_after(2))  # before any epoch end
        with pytest.raises(ResumeRefused, match="has no checkpoint"):
            resume(early.run_id, store)
        later = run(tiny_config(), store, should_stop=stop_after(12))
        config = store.get_run(later.run_id)["config"]
        config["data"]["batch_size"] = 0
        store.update_run(later.run_id, config=config)
        with pytest.raises(ResumeRefused, match="config no longer validates: "
                                                "data.batch_size: must be >= 1"):
            resume(later.run_id, store)
        store.update_run(later.run_id, status="failed")
        with pytest.raises(ResumeRefused, match="is failed"):
            resume(later.run_id, store)
        store.update_run(later.run_id, status="running")  # our own pid: alive
        with pytest.raises(ResumeRefused, match="still running"):
            resume(later.run_id, store)
        with pytest.raises(ResumeRefused, match="no run '99'"):
            resume(99, store)
        assert [r["status"] for r in store.list_runs()] == ["running", "stopped"]


def test_a_run_resumed_after_its_teacher_phase_needs_the_saved_teacher(tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "CHECKPOINT_EVERY_S", 0.0)  # a checkpoint in the baseline phase
    with Store(tmp_path / "history.db") as store:
        config = kd_cosine()
        plan_steps = 3 * 5  # the teacher: 3 epochs of ceil(144 / 32) = 5 steps
        stopped = run(config, store, should_stop=stop_after(plan_steps + 7))
        assert plan_of(store, stopped.run_id)["teacher"]["steps"] == plan_steps
        (store.artifact_dir(stopped.run_id) / "teacher.safetensors").unlink()
        with pytest.raises(ResumeRefused, match="its teacher weights cannot be loaded: "
                                                "cannot read .*teacher.safetensors"):
            resume(stopped.run_id, store)
        assert store.get_run(stopped.run_id)["status"] == "stopped"


def test_a_failed_run_loses_its_checkpoint_unless_kept(tmp_path):
    def fail_after(steps: int) -> Callable[[], bool]:
        calls = [0]

        def should_stop() -> bool:
            calls[0] += 1
            if calls[0] > steps:
                raise RuntimeError("injected")
            return False

        return should_stop

    with Store(tmp_path / "history.db") as store:
        for keep in (False, True):
            config = tiny_config()
            config.keep_checkpoints = keep
            failed = run(config, store, should_stop=fail_after(12))
            assert failed.status == "failed" and "injected" in failed.error
            checkpoint = store.artifact_dir(failed.run_id) / CHECKPOINT_NAME
            assert checkpoint.exists() is keep
            with pytest.raises(ResumeRefused, match="is failed"):
                resume(failed.run_id, store)


def test_keep_checkpoints_travels_through_toml_and_is_type_checked(tmp_path):
    from kdstudio.core.config import config_from_dict, read_toml

    config = tiny_config()
    config.keep_checkpoints = True
    save_toml(config, tmp_path / "c.toml")
    loaded, problems = config_from_dict(read_toml(tmp_path / "c.toml"))
    assert problems == [] and loaded.keep_checkpoints is True
    _, problems = config_from_dict({"keep_checkpoints": "yes"})
    assert problems == ["keep_checkpoints: must be true or false (got 'yes')"]


# ---------------------------------------------------------------- the command line


def test_cli_resume_continues_a_stopped_run_and_refuses_in_one_line(tmp_path, references):
    reference_store, reference = references("kd-cosine")
    db = tmp_path / "history.db"
    with Store(db) as store:
        stopped = run(kd_cosine(), store, should_stop=stop_after(20))
    done = run_cli("resume", str(stopped.run_id), "--db", db, "--quiet")
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert f"Run {stopped.run_id} completed" in done.stdout
    with Store(db) as store:
        resumed = RunResult(stopped.run_id, "completed",
                            store.get_run(stopped.run_id)["summary"])
        assert_same_as_uninterrupted(store, resumed, reference, reference_store)
    for key, message in (("1", "run 1 (tiny) is completed: only a stopped or interrupted run "
                               "can be resumed (it has finished)"),
                         ("nope", f"no run 'nope' in {db}"),
                         ("99999999999999999999999", "no run '99999999999999999999999'")):
        refused = run_cli("resume", key, "--db", db)
        assert_no_traceback(refused)
        assert refused.returncode == 2
        assert refused.stderr.startswith(f"kdstudio: {message}")
        assert len(refused.stderr.splitlines()) == 1


def long_config() -> RunConfig:
    """About a second and a half of training (12 epochs of 38 steps): long enough to be
    killed in the middle."""
    config = tiny_config()
    config.data.params = {"samples": 2000, "dims": 6, "classes": 3, "separation": 1.0}
    config.teacher.epochs = 4
    config.optim.epochs = 4
    config.optim.schedule = "cosine"
    return config


def test_a_run_killed_by_sigkill_is_resumed_by_a_new_process(tmp_path):
    config_file = tmp_path / "long.toml"
    save_toml(long_config(), config_file)
    db = tmp_path / "history.db"
    checkpoint = tmp_path / "history-artifacts" / "run-1" / CHECKPOINT_NAME
    process = subprocess.Popen([sys.executable, "-m", "kdstudio", "run", str(config_file),
                                "--db", str(db), "--quiet"], env=cli_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None:
            if checkpoint.exists() and read_checkpoint_meta(checkpoint)["epochs_done"] >= 2:
                break  # two epochs of the teacher done, the run goes on
            time.sleep(0.01)
        assert process.poll() is None, ("the run ended before it could be killed: "
                                        + process.stderr.read().decode())
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    with sqlite3.connect(db) as connection:
        status, = connection.execute("SELECT status FROM runs WHERE id = 1").fetchone()
    assert status == "running"  # left as it was by the killed process
    done = run_cli("resume", "1", "--db", db, "--quiet")
    assert_no_traceback(done)
    assert done.returncode == 0, done.stderr
    reference_folder = tmp_path / "reference"
    with Store(reference_folder / "reference.db") as reference_store, Store(db) as store:
        reference = run(long_config(), reference_store)
        row = store.get_run(1)
        assert row["status"] == "completed" and row["error"] is None
        resumed = RunResult(1, "completed", row["summary"])
        assert_same_as_uninterrupted(store, resumed, reference, reference_store)
