"""DDP under torchrun on the CPU (gloo): real `torch.distributed.run` processes, the run
recorded once by rank 0, and the same numbers as one process taking the global batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DistributedSampler

from kdstudio.core.config import ConfigError, RunConfig, save_toml
from kdstudio.core.engine import run
from kdstudio.core.engine.distributed import Distributed, Shard, World, detect
from kdstudio.core.engine.preparation import prepare
from kdstudio.core.engine.streaming import StreamBatches, default_batches
from kdstudio.core.resume import checkpoint_path, refusal
from kdstudio.core.store import Store
from tests.helpers import tiny_config

REPO = Path(__file__).resolve().parents[1]
ENV = os.environ | {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _config(batch_size: int, **changes: object) -> RunConfig:
    """FitNets (a trainable adapter, the teacher-output cache) with a baseline: 144
    training examples, so that 2 x 32 per process gives the batches of 64 in one."""
    config = tiny_config(method="fitnets", student_layer="hidden1", teacher_layer="hidden1")
    config.threads = 1
    config.data.batch_size = batch_size
    config.optim.epochs = 3
    for key, value in changes.items():
        setattr(config.optim if key == "epochs" else config, key, value)
    return config


def _torchrun(tmp_path: Path, config: RunConfig, **popen: object) -> subprocess.Popen:
    path = tmp_path / "cfg.toml"
    save_toml(config, path)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "--log-dir", str(tmp_path / "logs"), "--redirects",
               "3", "-m", "kdstudio", "run", str(path), "--db", str(tmp_path / "h.db")]
    return subprocess.Popen(command, env=ENV, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def _rank_output(tmp_path: Path, rank: int) -> tuple[str, str]:
    """What a rank wrote to its stdout and stderr (torchrun's --redirects files)."""
    folder = next((tmp_path / "logs").glob(f"*/attempt_0/{rank}"))
    return ((folder / "stdout.log").read_text(), (folder / "stderr.log").read_text())


def _last_losses(store: Store, run_id: int) -> dict[str, float]:
    rows = store.metrics(run_id, phase="student")
    last = max(row["step"] for row in rows)
    return {row["name"]: row["value"] for row in rows
            if row["step"] == last and row["name"].startswith("loss/")}


def test_a_shard_is_what_a_distributed_sampler_takes() -> None:
    for n, world in ((10, 3), (2, 4), (12, 2)):
        for rank in range(world):
            sampler = DistributedSampler(range(n), num_replicas=world, rank=rank,
                                         shuffle=False)
            assert Shard(rank, world).take(torch.arange(n)).tolist() == list(sampler)


def test_each_rank_takes_its_shard_in_memory_and_through_a_stream() -> None:
    config = tiny_config()
    config.data.batch_size = 20
    one = prepare(config)
    whole = [b.positions for b in default_batches(one, "student", one.labelled).epoch(1)]
    order = torch.cat(whole)  # the order one process draws in epoch 1
    shards = []
    for loader in ("memory", "stream"):
        config.data.loader = loader
        prepared = prepare(config)
        for rank in (0, 1):  # without a process group: only the shard is used
            prepared.distributed = Distributed(World(rank, rank, 2), "gloo",
                                               torch.device("cpu"))
            source = default_batches(prepared, "student", prepared.labelled)
            assert isinstance(source, StreamBatches) == (loader == "stream")
            assert source.steps_per_epoch == prepared.plan()["student"].steps_per_epoch == 4
            batches = list(source.epoch(1))
            assert [len(b.y) for b in batches] == [20, 20, 20, 12]
            for batch in batches:  # the labels and inputs of those positions
                assert torch.equal(batch.y, prepared.data.y_train[batch.positions])
            shards.append(torch.cat([b.positions for b in batches]))
    assert torch.equal(shards[0], order[0::2]) and torch.equal(shards[1], order[1::2])
    assert torch.equal(shards[2], shards[0]) and torch.equal(shards[3], shards[1])


def test_torchrun_environment_and_refusals(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    assert detect({}) is None and detect({"WORLD_SIZE": "1", "RANK": "0"}) is None
    world = detect({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert world is not None and (world.rank, world.local_rank, world.size) == (3, 1, 4)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    config = tiny_config(method="crd", student_layer="embedding", teacher_layer="embedding")
    config.data.transfer = "all"
    with Store(tmp_path / "h.db") as store, pytest.raises(ConfigError) as refused:
        run(config, store)
    assert [p.split(":")[0] for p in refused.value.problems] == [
        "distill.method = crd", "data.transfer = all"]
    assert "memory bank" in refused.value.problems[0]
    with Store(tmp_path / "h.db") as store:
        assert store.list_runs() == []


def test_two_processes_give_one_run_with_the_numbers_of_the_global_batch(
        tmp_path: Path) -> None:
    process = _torchrun(tmp_path, _config(32))
    with Store(tmp_path / "one.db") as store:  # meanwhile: one process, batch 2 x 32
        alone = run(_config(64), store)
        alone_losses = _last_losses(store, alone.run_id)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    with Store(tmp_path / "h.db") as store:
        rows = store.list_runs()
        assert len(rows) == 1 and rows[0]["status"] == "completed"
        row = rows[0]
        assert (row["env"]["world_size"], row["env"]["backend"]) == (2, "gloo")
        logs = [line["message"] for line in store.logs(row["id"])]
        losses = _last_losses(store, row["id"])
    line = ("DDP: 2 processes (gloo), batch 32 per process = 64 global; learning rate "
            "unchanged (no scaling rule)")
    assert any(message.startswith(line) for message in logs)
    # identical global batches and averaged gradients: the same training up to the order
    # of float sums, so the same predictions (allowed: one test example of the 48)
    assert abs(row["student_test_acc"] - alone.summary["student_test_acc"]) <= 1 / 48 + 1e-9
    assert abs(row["baseline_test_acc"] - alone.summary["baseline_test_acc"]) <= 1 / 48 + 1e-9
    assert losses.keys() == alone_losses.keys() == {"loss/total", "loss/ce", "loss/kd",
                                                    "loss/feature"}
    for name, value in losses.items():  # averaged over the ranks at read-back
        assert value == pytest.approx(alone_losses[name], rel=1e-4), name
    out0, err0 = _rank_output(tmp_path, 0)
    assert line in out0 and "completed" in out0 and "Traceback" not in err0
    assert _rank_output(tmp_path, 1) == ("", "")  # rank 1 says nothing


def test_a_refused_feature_is_one_line_from_rank_0(tmp_path: Path) -> None:
    config = tiny_config(method="crd", student_layer="embedding", teacher_layer="embedding")
    process = _torchrun(tmp_path, config)
    _, err = process.communicate(timeout=120)
    assert process.returncode != 0
    out0, err0 = _rank_output(tmp_path, 0)
    assert err0.splitlines() == [err0.splitlines()[0]]
    assert err0.startswith("kdstudio: distill.method = crd: CRD's memory bank")
    assert _rank_output(tmp_path, 1) == ("", "")
    assert "exitcode  : 2" in err  # torchrun's own report of its ranks' exit codes
    assert not (tmp_path / "h.db").exists() or not Store(tmp_path / "h.db").list_runs()


def test_sigterm_to_torchrun_stops_every_rank_with_one_stopped_row(tmp_path: Path) -> None:
    config = _config(32, epochs=2000)
    config.distill.baseline = False
    config.teacher.epochs = 1
    process = _torchrun(tmp_path, config, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:  # until the student trains
        logs = list((tmp_path / "logs").glob("*/attempt_0/0/stdout.log"))
        if logs and "[ student] epoch" in logs[0].read_text():
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    with Store(tmp_path / "h.db") as store:
        rows = store.list_runs()
        assert [row["status"] for row in rows] == ["stopped"]
        epochs = {row["epoch"] for row in store.metrics(rows[0]["id"], name="val/acc",
                                                       phase="student")}
        artifacts = store.artifact_dir(rows[0]["id"])
        assert checkpoint_path(artifacts).is_file()  # written by rank 0
        assert "not supported yet" in refusal(rows[0], artifacts)
    assert 0 < max(epochs) < 2000
    out0, err0 = _rank_output(tmp_path, 0)
    assert "Stopped by request" in out0 and "Traceback" not in err0
    assert _rank_output(tmp_path, 1) == ("", "")
