"""The inputs of one split, read by index: a tensor in memory, or files decoded one example
at a time (by a stream loader's worker processes).

Both give normalised float32 batches (`gather`), in-order chunks for evaluation and the
teacher-output cache (`chunks`), and a fingerprint of what they hold (the cache key).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch


class LoadFailure:
    """What a worker hands back instead of a batch when a file does not decode: the
    message names the file, and is raised in the training process without a traceback."""

    def __init__(self, message: str) -> None:
        self.message = message

    def raise_it(self) -> None:
        raise ValueError(self.message)


WORKER_MODULES = ["torch", "numpy", "PIL.Image", "kdstudio.core.data.examples",
                  "kdstudio.core.data.image_folder", "kdstudio.core.engine.streaming"]


def worker_context() -> Any:
    """The multiprocessing context of our DataLoader workers: forked from a clean server
    process (which has imported torch once), never from the training process, whose
    threads (a window's, SQLite's) a fork would copy in whatever state they are in."""
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_MODULES)
    return context


def as_is(item: Any) -> Any:
    """A loader's collate function when each item already is a whole batch."""
    return item


class Examples(ABC):
    """Normalised inputs of one split; `tensor` is all of them when they are in memory."""

    tensor: torch.Tensor | None = None

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def gather(self, rows: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The inputs at `rows`, as one (B, ...) float32 tensor."""

    @abstractmethod
    def subset(self, rows: torch.Tensor) -> Examples: ...

    @abstractmethod
    def chunks(self, size: int) -> Iterator[torch.Tensor]:
        """All inputs in order, `size` at a time."""

    def head(self, count: int) -> torch.Tensor:
        return self.gather(torch.arange(min(count, len(self))))

    @abstractmethod
    def fingerprint(self, digest: Any) -> None:
        """Feed what identifies these inputs to a hashlib digest."""


class TensorExamples(Examples):
    """Inputs held in memory as one tensor."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    def __len__(self) -> int:
        return len(self.tensor)

    def gather(self, rows: torch.Tensor | np.ndarray) -> torch.Tensor:
        return self.tensor[torch.as_tensor(rows)]

    def subset(self, rows: torch.Tensor) -> Examples:
        return TensorExamples(self.tensor[rows])

    def chunks(self, size: int) -> Iterator[torch.Tensor]:
        return iter(self.tensor.split(size))

    def head(self, count: int) -> torch.Tensor:
        return self.tensor[:count]

    def fingerprint(self, digest: Any) -> None:
        x = self.tensor
        digest.update(str(tuple(x.shape)).encode())
        digest.update(x.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())


def as_examples(x: torch.Tensor | Examples) -> Examples:
    return TensorExamples(x) if isinstance(x, torch.Tensor) else x


def normalise_batch(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std per channel of (N, C, ...) data (one value for flat data), in
    float64 then float32: element for element what `normalise` gives the whole array."""
    if x.ndim <= 2:
        return ((x - mean[0]) / std[0]).astype(np.float32)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return ((x - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)


class FileExamples(Examples):
    """Inputs decoded from files when asked for; never all held at once.

    `decoder(file)` gives one example as a float32 array of `shape`; with `mean` and `std`
    the batches are normalised. `workers` decode in-order chunks (evaluation, the teacher
    cache, statistics) in that many processes, started for each pass and gone at its end.
    `source` identifies the files' contents (their names, sizes and times), for the
    teacher-output cache key.
    """

    def __init__(self, files: list[str], decoder: Callable[[str], np.ndarray],
                 shape: tuple[int, ...], mean: np.ndarray | None = None,
                 std: np.ndarray | None = None, workers: int = 0, source: str = "") -> None:
        self.files, self.decoder, self.shape = files, decoder, tuple(shape)
        self.mean, self.std, self.workers, self.source = mean, std, workers, source

    def __len__(self) -> int:
        return len(self.files)

    def gather(self, rows: torch.Tensor | np.ndarray) -> torch.Tensor:
        indices = np.asarray(rows, dtype=np.int64).reshape(-1)
        batch = np.empty((len(indices), *self.shape), dtype=np.float32)
        for slot, index in enumerate(indices):
            batch[slot] = self.decoder(self.files[index])
        if self.mean is not None:
            batch = normalise_batch(batch, self.mean, self.std)
        return torch.from_numpy(batch)

    def subset(self, rows: torch.Tensor) -> Examples:
        files = [self.files[int(i)] for i in rows]
        return FileExamples(files, self.decoder, self.shape, self.mean, self.std,
                            self.workers, self.source)

    def chunks(self, size: int) -> Iterator[torch.Tensor]:
        ranges = [np.arange(start, min(start + size, len(self)))
                  for start in range(0, len(self), size)]
        workers = min(self.workers, len(ranges)) if len(ranges) > 1 else 0
        if workers == 0:  # (one chunk: a worker would only add its start-up)
            for rows in ranges:
                yield self.gather(rows)
            return
        from torch.utils.data import DataLoader

        loader = DataLoader(_Chunks(self), sampler=ranges, batch_size=None,
                            num_workers=workers, collate_fn=as_is,
                            multiprocessing_context=worker_context())
        for chunk in loader:
            if isinstance(chunk, LoadFailure):
                chunk.raise_it()
            yield chunk

    def fingerprint(self, digest: Any) -> None:
        digest.update(self.source.encode())
        digest.update(str(self.shape).encode())
        digest.update(hashlib.sha256("\n".join(self.files).encode()).digest())
        for stats in (self.mean, self.std):
            digest.update(b"-" if stats is None else np.asarray(stats, np.float64).tobytes())


class _Chunks:
    """A map-style dataset whose items are whole chunks of `examples` (index arrays in)."""

    def __init__(self, examples: Examples) -> None:
        self.examples = examples

    def __getitem__(self, rows: np.ndarray) -> torch.Tensor | LoadFailure:
        try:
            return self.examples.gather(rows)
        except (OSError, ValueError) as error:
            return LoadFailure(str(error))

    def __len__(self) -> int:
        return len(self.examples)
