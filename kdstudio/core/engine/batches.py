"""Where a phase's batches come from: the `BatchSource` seam, and the in-memory source.

The loop asks its source for an epoch's batches and never indexes the data itself.
`InMemoryBatches` gathers batches from tensors in memory; `streaming.StreamBatches` reads
them through a `torch.utils.data` loader (files on disk, workers, pinned memory,
augmentation; under DDP it would be sharded by a DistributedSampler).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, NamedTuple, Protocol

import torch

if TYPE_CHECKING:
    from kdstudio.core.engine.distributed import Shard
    from kdstudio.core.engine.preparation import Prepared


class Batch(NamedTuple):
    """One step's data, on the CPU (the step moves it to the device).

    `x`, `y`: the labelled batch (CE's inputs and labels). `positions`: where each of its
    examples sits among the teacher's inputs (the teacher-output cache and CRD's memory bank
    are addressed by it). A two-stream step (a transfer set) adds `transfer_x`, the KD
    terms' inputs, and `transfer_positions`, their positions in the transfer set; their
    labels never reach a loss.
    """

    x: torch.Tensor
    y: torch.Tensor
    positions: torch.Tensor
    transfer_x: torch.Tensor | None = None
    transfer_positions: torch.Tensor | None = None


class BatchSource(Protocol):
    """What the phase loop takes its batches from.

    A source must provide:
    - `steps_per_epoch`: the number of batches `epoch()` yields (the run plan counts on it;
      for a loader, `len(loader)`);
    - `epoch(epoch)`: an iterator over that epoch's batches (`epoch` counts from 0; a
      loader source calls `sampler.set_epoch(epoch)` there, so that a DistributedSampler
      shuffles each epoch differently and every rank the same way);
    - `generator_states()` / `restore(states, pending)`: the states of every random
      generator that decides the order (a loader's sampler generator; for few labels, the
      labelled cycle's too) and the labelled batches already drawn but not used, so that a
      resumed run draws exactly the batches it would have drawn.
    Batches are CPU tensors (pinned, for a loader with `pin_memory`), with the positions
    described in `Batch`. With the same seed and no augmentation, every source yields the
    same batches in the same order as `InMemoryBatches`: a permutation of the labelled
    subset from a `torch.Generator` seeded `seed + 3`, split into `batch_size` chunks.
    """

    steps_per_epoch: int

    def epoch(self, epoch: int) -> Iterator[Batch]: ...

    def generator_states(self) -> dict[str, torch.Tensor]: ...

    def pending(self) -> list[torch.Tensor]: ...

    def restore(self, states: dict[str, torch.Tensor], pending: list[torch.Tensor]) -> None: ...


# what a run asks for each phase's batches: (prepared run, phase name, the positions in the
# training split whose labels the phase may use) -> the phase's source
BatchFactory = Callable[["Prepared", str, torch.Tensor], BatchSource]


class LabelledCycle:
    """Endless shuffled batches of positions in the labelled subset, a new order each round."""

    def __init__(self, n_labelled: int, batch_size: int, generator: torch.Generator) -> None:
        self.n_labelled = n_labelled
        self.batch_size = batch_size
        self.generator = generator
        self.pending: list[torch.Tensor] = []

    def next(self) -> torch.Tensor:
        if not self.pending:
            order = torch.randperm(self.n_labelled, generator=self.generator)
            self.pending = list(order.split(self.batch_size))[::-1]
        return self.pending.pop()


class InMemoryBatches:
    """Batches gathered from tensors in memory.

    One stream: each epoch a shuffled pass over the labelled examples. Two streams (a
    transfer set): each epoch a shuffled pass over the transfer set, each of its batches
    paired with the next batch of labelled examples, which cycle (reshuffled each round).
    Under DDP (`shard`, one stream only) a process takes its shard of each epoch's order.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, labelled: torch.Tensor,
                 batch_size: int, seed: int, transfer_inputs: torch.Tensor | None = None,
                 shard: Shard | None = None, pin_memory: bool = False) -> None:
        self.x, self.y, self.labelled = x, y, labelled
        # gather straight into page-locked memory, whence a CUDA copy need not block
        self.pin_memory = pin_memory and torch.cuda.is_available()
        self.batch_size = batch_size
        self.transfer_inputs = transfer_inputs
        # all of the training split: a position is its own index, no gather needed
        self.everything = len(labelled) == len(y)
        self.order = torch.Generator().manual_seed(seed + 3)
        self.cycle = LabelledCycle(len(labelled), batch_size,
                                   torch.Generator().manual_seed(seed + 4))
        epoch_size = len(labelled) if transfer_inputs is None else len(transfer_inputs)
        if shard is not None:
            if transfer_inputs is not None:
                raise ValueError("two-stream batches are not sharded")
            epoch_size = shard.length(epoch_size)
        self.shard = shard
        # augmentation draws of this process (rank 0 draws as a single process does)
        self.stream_offset = 0 if shard is None else 2 * shard.rank
        self.steps_per_epoch = math.ceil(epoch_size / batch_size)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        x, y, labelled, everything = self.x, self.y, self.labelled, self.everything
        if self.transfer_inputs is None:
            order = torch.randperm(len(labelled), generator=self.order)
            if self.shard is not None:
                order = self.shard.take(order)
            for positions in order.split(self.batch_size):
                rows = positions if everything else labelled[positions]
                yield Batch(self._gather(x, rows), self._gather(y, rows), positions)
            return
        transfer = self.transfer_inputs
        transfer_order = torch.randperm(len(transfer), generator=self.order)
        pairs = [(self.cycle.next(), chunk) for chunk in transfer_order.split(self.batch_size)]
        for positions, chunk in pairs:
            rows = positions if everything else labelled[positions]
            yield Batch(self._gather(x, rows), self._gather(y, rows), positions,
                        self._gather(transfer, chunk), chunk)

    def _gather(self, values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """`values[rows]`, in pinned memory when batches go to a CUDA device."""
        if not self.pin_memory:
            return values[rows]
        out = torch.empty((len(rows), *values.shape[1:]), dtype=values.dtype,
                          pin_memory=True)
        return torch.index_select(values, 0, rows, out=out)

    def generator_states(self) -> dict[str, torch.Tensor]:
        return {"order": self.order.get_state(), "cycle": self.cycle.generator.get_state()}

    def pending(self) -> list[torch.Tensor]:
        return list(self.cycle.pending)

    def restore(self, states: dict[str, torch.Tensor], pending: list[torch.Tensor]) -> None:
        self.order.set_state(states["order"])
        self.cycle.generator.set_state(states["cycle"])
        self.cycle.pending = list(pending)


def in_memory_batches(prepared: Prepared, phase: str, labelled: torch.Tensor
                      ) -> InMemoryBatches:
    """The in-memory `BatchFactory` (the default for data in memory without augmentation):
    batches from the prepared tensors. The teacher takes
    all the training split, baseline and student the labelled subset (and the transfer
    set, if any)."""
    config = prepared.config
    transfer = prepared.transfer_inputs if phase != "teacher" else None
    return InMemoryBatches(prepared.data.x_train, prepared.data.y_train, labelled,
                           config.data.batch_size, config.seed, transfer, shard_of(prepared),
                           pin_memory=prepared.device.type == "cuda")


def shard_of(prepared: Prepared) -> Shard | None:
    """This process's shard under DDP, else None."""
    return None if prepared.distributed is None else prepared.distributed.shard
