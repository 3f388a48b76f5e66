"""The background checkpoint writer: what it writes, what it copies, how it fails."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kdstudio.core.resume import (
    CheckpointWriter,
    TrainingState,
    pack_state,
    read_state,
    write_state,
)


def _state(weight: torch.Tensor) -> TrainingState:
    return TrainingState(
        phase="student", epochs_done=3, phase_step=30, run_step=90, elapsed_s=1.5,
        summary={"teacher_test_acc": 0.9}, plan=[], model={"fc.weight": weight},
        optimizer={0: {"step": torch.tensor(30.0), "exp_avg": weight * 0.5}},
        rng={"torch": torch.get_rng_state()})


def test_background_write_reads_back_as_a_synchronous_one(tmp_path: Path) -> None:
    weight = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    writer = CheckpointWriter()
    writer.submit(tmp_path / "bg.safetensors", pack_state(_state(weight)))
    size = writer.wait()
    sync_size = write_state(tmp_path / "sync.safetensors", _state(weight))
    assert size == sync_size == (tmp_path / "bg.safetensors").stat().st_size
    back = read_state(tmp_path / "bg.safetensors")
    assert torch.equal(back.model["fc.weight"], weight)
    assert torch.equal(back.optimizer[0]["exp_avg"], weight * 0.5)
    assert (back.epochs_done, back.phase_step, back.run_step) == (3, 30, 90)
    assert not (tmp_path / "bg.safetensors.tmp").exists()


def test_the_copy_is_taken_at_submit_so_training_may_go_on(tmp_path: Path) -> None:
    weight = torch.ones(64, 64)
    packed = pack_state(_state(weight))
    weight.add_(1.0)  # the next epoch's steps change the live weights in place
    writer = CheckpointWriter()
    writer.submit(tmp_path / "c.safetensors", packed)
    writer.wait()
    assert torch.equal(read_state(tmp_path / "c.safetensors").model["fc.weight"],
                       torch.ones(64, 64))


def test_a_failed_write_is_raised_once_and_the_writer_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the run folder should be")
    writer = CheckpointWriter()
    writer.submit(blocker / "resume.safetensors", pack_state(_state(torch.zeros(2))))
    with pytest.raises(OSError):
        writer.wait()
    assert writer.wait() == 0  # raised once; nothing written
    good = tmp_path / "ok.safetensors"
    writer.submit(good, pack_state(_state(torch.zeros(2))))
    assert writer.wait() == good.stat().st_size


def test_a_new_write_waits_for_the_one_under_way(tmp_path: Path) -> None:
    writer = CheckpointWriter()
    path = tmp_path / "r.safetensors"
    for epoch in range(1, 6):
        state = _state(torch.full((256, 256), float(epoch)))
        state.epochs_done = epoch
        writer.submit(path, pack_state(state))
    writer.wait()
    back = read_state(path)
    assert back.epochs_done == 5
    assert torch.equal(back.model["fc.weight"], torch.full((256, 256), 5.0))
