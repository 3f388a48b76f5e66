"""Batch sources beside the in-memory one: `StreamBatches`, read through a
`torch.utils.data.DataLoader` (worker processes, pinned memory, prefetching), and
`AugmentedBatches`, in-memory batches with crop-flip. `default_batches` picks a phase's
source from the loader the data was prepared for (`Splits.loader`) and `data.augment`.

A stream draws its order exactly as `InMemoryBatches` does (it keeps one over positions),
so with the same seed and no augmentation it yields the same batches in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from kdstudio.core.data.augment import CropFlip
from kdstudio.core.data.examples import (
    Examples,
    LoadFailure,
    as_examples,
    as_is,
    worker_context,
)
from kdstudio.core.engine.batches import (
    Batch,
    BatchSource,
    InMemoryBatches,
    in_memory_batches,
    shard_of,
)

if TYPE_CHECKING:
    from kdstudio.core.engine.distributed import Shard
    from kdstudio.core.engine.preparation import Prepared

PREFETCH = 2  # batches each worker prepares ahead

# one step of an epoch as a worker gets it: (epoch, step, rows of the training split,
# transfer positions or None); index arrays, cheap to send
StepTask = tuple[int, int, np.ndarray, np.ndarray | None]


class StepData:
    """A map-style dataset whose item is one step's inputs: the labelled rows gathered
    (decoded and normalised) and augmented, and the transfer chunk's, if any. Only inputs
    come back from a worker: each tensor sent costs a shared-memory handle, and the labels
    and positions are in the training process already."""

    def __init__(self, inputs: Examples, transfer: Examples | None,
                 augment: CropFlip | None, stream_offset: int = 0) -> None:
        self.inputs, self.transfer, self.augment = inputs, transfer, augment
        self.stream_offset = stream_offset  # a DDP rank's own augmentation draws

    def __getitem__(self, task: StepTask
                    ) -> tuple[torch.Tensor, torch.Tensor | None] | LoadFailure:
        epoch, step, rows, chunk = task
        try:
            x = self.inputs.gather(rows)
            transfer_x = None if chunk is None else self.transfer.gather(chunk)
        except (OSError, ValueError) as error:
            return LoadFailure(str(error))
        if self.augment is not None:
            x = self.augment(x, epoch, step, self.stream_offset)
            if transfer_x is not None:
                transfer_x = self.augment(transfer_x, epoch, step, self.stream_offset + 1)
        return x, transfer_x

    def __len__(self) -> int:
        return len(self.inputs)


class EpochTasks(Sampler):
    """The sampler of a stream: the current epoch's steps, set before each pass."""

    def __init__(self) -> None:
        self.tasks: list[StepTask] = []

    def __iter__(self) -> Iterator[StepTask]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)


class StreamBatches:
    """Batches read through a DataLoader over `inputs` (the training split).

    The order comes from an `InMemoryBatches` over positions (generators seeded seed + 3
    and seed + 4, as in memory); the loader's workers only gather, decode, normalise and
    augment. Workers persist across epochs; batches are pinned for a CUDA device.
    """

    def __init__(self, inputs: Examples, y: torch.Tensor, labelled: torch.Tensor,
                 batch_size: int, seed: int, transfer: Examples | None = None,
                 workers: int = 0, pin_memory: bool = False,
                 augment: CropFlip | None = None, shard: Shard | None = None) -> None:
        transfer_rows = None if transfer is None else torch.arange(len(transfer))
        self.order = InMemoryBatches(torch.arange(len(y)), y, labelled, batch_size, seed,
                                     transfer_rows, shard)
        self.steps_per_epoch = self.order.steps_per_epoch
        self.tasks = EpochTasks()
        extra: dict[str, Any] = ({"persistent_workers": True, "prefetch_factor": PREFETCH,
                                  "multiprocessing_context": worker_context()}
                                 if workers > 0 else {})
        self.loader = DataLoader(StepData(inputs, transfer, augment, self.order.stream_offset),
                                 sampler=self.tasks,
                                 batch_size=None, collate_fn=as_is, num_workers=workers,
                                 pin_memory=pin_memory, **extra)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        # the order's batches hold rows (as x), labels and positions; workers get the rows
        planned = list(self.order.epoch(epoch))
        self.tasks.tasks = [
            (epoch, step, batch.x.numpy(),
             None if batch.transfer_positions is None else batch.transfer_positions.numpy())
            for step, batch in enumerate(planned)]
        for batch, loaded in zip(planned, self.loader, strict=True):
            if isinstance(loaded, LoadFailure):
                loaded.raise_it()
            x, transfer_x = loaded
            yield Batch(x, batch.y, batch.positions, transfer_x, batch.transfer_positions)

    def generator_states(self) -> dict[str, torch.Tensor]:
        return self.order.generator_states()

    def pending(self) -> list[torch.Tensor]:
        return self.order.pending()

    def restore(self, states: dict[str, torch.Tensor], pending: list[torch.Tensor]) -> None:
        self.order.restore(states, pending)


class AugmentedBatches(InMemoryBatches):
    """In-memory batches with crop-flip applied to each gathered batch (and transfer
    batch), the draws seeded by (seed, epoch, step) as in a stream."""

    def __init__(self, *args: Any, augment: CropFlip, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.augment = augment

    def epoch(self, epoch: int) -> Iterator[Batch]:
        augment, stream = self.augment, self.stream_offset
        for step, batch in enumerate(super().epoch(epoch)):
            transfer_x = batch.transfer_x
            if transfer_x is not None:
                transfer_x = augment(transfer_x, epoch, step, stream + 1)
            yield Batch(augment(batch.x, epoch, step, stream), batch.y, batch.positions,
                        transfer_x, batch.transfer_positions)


def augmentation(prepared: Prepared) -> CropFlip | None:
    """The run's training augmentation, or None."""
    if prepared.config.data.augment != "crop-flip":
        return None
    data = prepared.data
    return CropFlip(prepared.config.seed, data.mean, data.std)


def default_batches(prepared: Prepared, phase: str, labelled: torch.Tensor) -> BatchSource:
    """The `BatchFactory` a run uses unless given one: in memory, or a stream, as the data
    was prepared; crop-flip on every training phase's batches when asked."""
    data, config = prepared.data, prepared.config
    augment = augmentation(prepared)
    transfer = prepared.transfer_inputs if phase != "teacher" else None
    if data.loader == "memory":
        if augment is None:
            return in_memory_batches(prepared, phase, labelled)
        return AugmentedBatches(data.x_train, data.y_train, labelled, config.data.batch_size,
                                config.seed, transfer, shard_of(prepared), augment=augment)
    return StreamBatches(data.inputs("train"), data.y_train, labelled,
                         config.data.batch_size, config.seed,
                         None if transfer is None else as_examples(transfer),
                         config.data.workers, prepared.device.type == "cuda", augment,
                         shard_of(prepared))
