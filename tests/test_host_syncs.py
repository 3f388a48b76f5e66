"""The step path reads nothing back to the host per step: loss parts, accuracy counts and
finiteness checks stay with the tensors until a publish reads a batch of steps at once."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from kdstudio.core.config import RunConfig
from kdstudio.core.engine import run
from kdstudio.core.engine.step import PhaseStep
from kdstudio.core.store import Store
from tests.helpers import tiny_config

# every way Python code turns a tensor into host values
READ_BACKS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")


@dataclass
class ReadBacks:
    """Host read-backs of tensors while the engine runs, by where they happened."""

    in_step: list[str] = field(default_factory=list)  # inside PhaseStep.run, not publishing
    in_publish: int = 0
    steps: int = 0
    publishes: int = 0
    depth: dict[str, int] = field(default_factory=lambda: {"run": 0, "publish": 0})


@contextmanager
def counting_read_backs(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReadBacks]:
    """Count every read-back method call on a tensor, and the steps and publishes."""
    seen = ReadBacks()

    def counted(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def read_back(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if seen.depth["publish"]:
                seen.in_publish += 1
            elif seen.depth["run"]:
                seen.in_step.append(name)
            return original(self, *args, **kwargs)
        return read_back

    def tracked(kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def method(self: PhaseStep, *args: Any) -> Any:
            if kind == "run":
                seen.steps += 1
            elif self.pending:
                seen.publishes += 1
            seen.depth[kind] += 1
            try:
                return original(self, *args)
            finally:
                seen.depth[kind] -= 1
        return method

    for name in READ_BACKS:
        monkeypatch.setattr(torch.Tensor, name, counted(name, getattr(torch.Tensor, name)))
    monkeypatch.setattr(PhaseStep, "run", tracked("run", PhaseStep.run))
    monkeypatch.setattr(PhaseStep, "publish", tracked("publish", PhaseStep.publish))
    yield seen
    monkeypatch.undo()


def steady_config(samples: int, method: str = "kd") -> RunConfig:
    config = tiny_config()
    config.data.params = {**config.data.params, "samples": samples}
    config.distill.method = method
    return config


def run_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: RunConfig,
                publish_every: int) -> ReadBacks:
    """A real run of the three phases, publishing every `publish_every` steps (and at each
    epoch end), never on time, so that the publish points are known."""
    monkeypatch.setattr(PhaseStep, "PUBLISH_SECONDS", float("inf"))
    monkeypatch.setattr(PhaseStep, "MAX_PENDING", publish_every)
    with Store(tmp_path / f"{config.data.params['samples']}.db") as store, \
            counting_read_backs(monkeypatch) as seen:
        result = run(config, store)
    assert result.status == "completed", result.error
    return seen


# CRD reads its two normalising constants (and estimates them) in its first step only
@pytest.mark.parametrize(("method", "first_step_reads"), [("kd", 0), ("dkd", 0), ("crd", 4)])
def test_steps_read_nothing_back_and_publishes_read_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str,
        first_step_reads: int) -> None:
    few = run_counted(tmp_path, monkeypatch, steady_config(240, method), publish_every=1000)
    many = run_counted(tmp_path, monkeypatch, steady_config(960, method), publish_every=1000)
    assert many.steps >= 3 * few.steps > 20
    assert len(few.in_step) == len(many.in_step) == first_step_reads
    # one publish per epoch end (3 phases x 2 epochs): the reads follow the publishes,
    # not the steps between them
    assert few.publishes == many.publishes == 6
    assert few.in_publish == many.in_publish <= few.publishes


def test_reads_grow_with_publishes_not_steps(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    seen = run_counted(tmp_path, monkeypatch, steady_config(480), publish_every=4)
    assert seen.in_step == []
    assert seen.steps > 3 * 6 and seen.publishes >= seen.steps / 4
    assert 0 < seen.in_publish <= seen.publishes


def test_a_non_finite_loss_is_caught_within_one_publish_naming_where(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_config()
    config.optim.name, config.optim.lr, config.optim.schedule = "sgd", 1e30, "constant"
    publish_every = 3
    monkeypatch.setattr(PhaseStep, "PUBLISH_SECONDS", float("inf"))
    monkeypatch.setattr(PhaseStep, "MAX_PENDING", publish_every)
    with Store(tmp_path / "h.db") as store, counting_read_backs(monkeypatch) as seen:
        result = run(config, store)
    assert result.status == "failed"
    found = re.search(r"in phase teacher, epoch (\d+), step (\d+);", result.error)
    assert found, result.error
    bad_step = int(found.group(2))
    assert found.group(1) == "1" and bad_step > 1
    # the run stopped at the publish that read the bad step: fewer than one interval later
    assert bad_step <= seen.steps < bad_step + publish_every
    assert seen.in_step == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_steps_never_synchronise_between_publishes(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """Under torch.cuda.set_sync_debug_mode("error") inside every step (publishes
    excepted) any synchronising call raises and fails the run."""

    def guarded(kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def method(self: PhaseStep, *args: Any) -> Any:
            before = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode("error" if kind == "run" else 0)
            try:
                return original(self, *args)
            finally:
                torch.cuda.set_sync_debug_mode(before)
        return method

    monkeypatch.setattr(PhaseStep, "run", guarded("run", PhaseStep.run))
    monkeypatch.setattr(PhaseStep, "publish", guarded("publish", PhaseStep.publish))
    for autocast in (False, True):
        config = steady_config(480)
        config.device = "cuda"
        config.autocast = autocast
        with Store(tmp_path / f"cuda-{autocast}.db") as store:
            result = run(config, store)
        assert result.status == "completed", result.error
