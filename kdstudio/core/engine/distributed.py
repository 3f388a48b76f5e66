"""Data-parallel training under torchrun (DistributedDataParallel).

`torchrun --nproc-per-node N -m kdstudio run CFG.toml` starts N processes with WORLD_SIZE,
RANK and LOCAL_RANK set; `detect` reads them. Each process prepares the same run (same
seeds, so the same models and data), joins the process group (gloo on the CPU, NCCL on
CUDA with device cuda:LOCAL_RANK) and trains on its shard of each epoch's permutation
(`Shard`, as a DistributedSampler: padded to equal shards, a new order each epoch, the
same on every rank). `data.batch_size` is per process: the global batch is batch_size x
N, the learning rate is unchanged. The trainable modules of each phase (model and
adapters) run their loss inside one DistributedDataParallel; the frozen teacher is not
wrapped. Step losses are averaged over the ranks when they are read back, epoch totals
summed; validation and test run on the whole split in every process (exact accuracies),
and rank 0 alone records. A stop is agreed where the step losses are read back (every
32 steps) and at each epoch end, after its checkpoint.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kdstudio.core.config import ConfigError, RunConfig

if TYPE_CHECKING:
    from kdstudio.core.engine.preparation import Prepared


@dataclass(frozen=True)
class World:
    """Where this process sits among torchrun's processes."""

    rank: int
    local_rank: int
    size: int


def detect(environ: dict[str, str] | None = None) -> World | None:
    """The torchrun environment, or None when this process runs alone (no WORLD_SIZE, or
    a world of one)."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return None
    try:
        world = World(int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0")),
                      int(env["WORLD_SIZE"]))
    except ValueError:
        raise ConfigError(["WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers (they are "
                           "set by torchrun)"]) from None
    return world if world.size > 1 else None


def refusals(config: RunConfig) -> list[str]:
    """What a run under DDP cannot do yet, each naming its key and why."""
    problems = []
    if config.distill.method == "crd":
        problems.append("distill.method = crd: CRD's memory bank is updated from each "
                        "process's own batches, so under torchrun the processes' banks would "
                        "drift apart; run CRD in one process (without torchrun)")
    if config.data.transfer != "labelled":
        problems.append(f"data.transfer = {config.data.transfer}: two-stream batches (a "
                        "transfer set) are not sharded under torchrun yet; use "
                        "data.transfer = \"labelled\" or run in one process")
    if config.device.strip().lower() == "mps":
        problems.append("device = mps: torchrun runs on the CPU (gloo) or CUDA (NCCL), "
                        "not MPS")
    return problems


@dataclass(frozen=True)
class Shard:
    """One process's share of each epoch's order, as a DistributedSampler takes it: the
    order padded (by repeating its start) to a multiple of the world size, then every
    `size`-th position from `rank`."""

    rank: int
    size: int

    def length(self, n: int) -> int:
        return math.ceil(n / self.size)

    def take(self, order: torch.Tensor) -> torch.Tensor:
        total = self.length(len(order)) * self.size
        if total != len(order):
            order = order.repeat(math.ceil(total / len(order)))[:total]
        return order[self.rank::self.size]


class StepModule(nn.Module):
    """A phase's trainable modules with the step's forward pass and loss as `forward`:
    what DistributedDataParallel wraps, so that it sees which parameters the loss used
    (an adapter whose loss weight is 0 at a step gets no gradient)."""

    def __init__(self, model: nn.Module, adapters: nn.Module | None,
                 losses: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor],
                                             torch.Tensor]]) -> None:
        super().__init__()
        self.model = model
        self.adapters = adapters
        self.losses = losses
        self.parts: dict[str, torch.Tensor] = {}

    def forward(self, *batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        logits, self.parts, total = self.losses(*batch)
        return total, logits


class Distributed:
    """This process's part in a DDP run: its rank, device, shard and the collectives."""

    def __init__(self, world: World, backend: str, device: torch.device) -> None:
        self.world = world
        self.rank, self.size = world.rank, world.size
        self.backend, self.device = backend, device
        self.shard = Shard(world.rank, world.size)
        self.stop_requested: Callable[[], bool] = lambda: False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module, adapters: nn.Module | None,
             losses: Callable[..., Any]) -> Callable[..., Any]:
        """The step's loss function with its gradients averaged over the ranks."""
        module = StepModule(model, adapters, losses)
        ddp = DistributedDataParallel(module, find_unused_parameters=adapters is not None)

        def ddp_losses(*batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor],
                                             torch.Tensor]:
            total, logits = ddp(*batch)
            return logits, module.parts, total
        return ddp_losses

    def sum(self, values: list[float]) -> list[float]:
        """`values` summed over the ranks (one all-reduce)."""
        where = self.device if self.backend == "nccl" else torch.device("cpu")
        tensor = torch.tensor(values, dtype=torch.float64, device=where)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def agree_stop(self) -> bool:
        """Whether any rank was asked to stop (all ranks call it at the same point)."""
        return self.sum([1.0 if self.stop_requested() else 0.0])[0] > 0

    def describe(self, batch_size: int) -> str:
        return (f"DDP: {self.size} processes ({self.backend}), batch {batch_size} per "
                f"process = {batch_size * self.size} global; learning rate unchanged (no "
                "scaling rule); each process trains on its shard of every epoch's order; "
                "validation and test on the whole split; rank 0 records")

    def environment(self) -> dict[str, Any]:
        return {"world_size": self.size, "backend": self.backend}

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def start(world: World, prepared: Prepared) -> Distributed:
    """Join torchrun's process group (MASTER_ADDR and MASTER_PORT from torchrun) and put
    `prepared` on this process's device and shard."""
    if prepared.device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    try:
        dist.init_process_group(backend, rank=world.rank, world_size=world.size)
    except (RuntimeError, ValueError) as error:  # e.g. WORLD_SIZE set by hand, no torchrun
        raise ConfigError([f"WORLD_SIZE={world.size}: could not join the process group of "
                           f"torchrun ({backend}): {error}"]) from None
    prepared.device = device
    prepared.distributed = Distributed(world, backend, device)
    return prepared.distributed
