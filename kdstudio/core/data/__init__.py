"""Dataset registry and the preparation every run shares: split, normalise, batch.

A dataset file subclasses `Dataset` and decorates it with `@register_dataset("name")`.
`describe` must be cheap (no loading): validation uses it to check model shapes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from kdstudio.core.data.examples import Examples, FileExamples, TensorExamples, normalise_batch
from kdstudio.core.data.loaders import augment_problem, choose_loader
from kdstudio.core.data.stats import (
    STATS_CHUNK,
    cached_stats,
    path_stamps,
    stats_key,
    streamed_stats,
)
from kdstudio.core.registry import Registry, import_submodules
from kdstudio.core.text import printable, short_number

TEST_SPLIT_SEED = 20150309  # fixed, so runs with different seeds share one test set
MAX_WHOLE = 2**63 - 1


def whole_number(params: dict[str, Any], key: str, minimum: int, maximum: int = MAX_WHOLE
                 ) -> int:
    """`params[key]` as an int (an integral float is accepted); raises ValueError naming it."""
    value = params[key]
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be a whole number (got {value!r})")
    if value < minimum:
        raise ValueError(f"{key} must be >= {minimum} (got {short_number(value)})")
    if value > maximum:
        raise ValueError(f"{key} must be at most {maximum:,} (got {short_number(value)})")
    return value


class DataFileError(ValueError):
    """A dataset's file cannot be used: the message names the file (and row/column)."""


@dataclass
class DatasetInfo:
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: list[str]


@dataclass
class RawData:
    """Arrays as a dataset provides them; `x_test` is None when it has no test split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    class_names: list[str]


class Dataset(ABC):
    """Base class of registered datasets. `defaults` lists the parameters and their defaults."""

    defaults: ClassVar[dict[str, Any]] = {}
    needs_path: ClassVar[bool] = False
    official_test: ClassVar[bool | None] = None  # True: always its own test split; None: by files
    path_kind: ClassVar[str] = "folder"  # what data.path names: "folder" or "file"
    path_filter: ClassVar[str] = ""  # the file picker's filter, e.g. "CSV tables (*.csv)"
    description: ClassVar[str] = ""

    @abstractmethod
    def describe(self, path: str, params: dict[str, Any]) -> DatasetInfo:
        """Input shape, classes and class names, without loading the data."""

    @abstractmethod
    def load(self, path: str, params: dict[str, Any]) -> RawData:
        """The arrays; inputs as float32 in their natural range, labels as int64."""

    def check_path(self, path: str) -> str | None:
        """A problem with `path` in one sentence, or None."""
        return None

    def files(self, path: str, params: dict[str, Any]) -> FileSplits | None:
        """The examples as files a stream loader decodes one at a time, or None for a
        dataset that is read whole (its arrays stay in memory under either loader)."""
        return None

    def memory_problem(self, path: str, params: dict[str, Any]) -> str | None:
        """Why `load` would not fit in memory, or None (checked for data.loader = memory)."""
        return None


@dataclass
class FileSplits:
    """A dataset as files: the training files and labels, the test ones when it has a test
    split, and `decoder(file)`, one example as float32 of the input shape (picklable: a
    loader's worker processes call it)."""

    train_files: list[str]
    train_labels: np.ndarray
    test_files: list[str] | None
    test_labels: np.ndarray | None
    decoder: Callable[[str], np.ndarray]
    class_names: list[str]

    def count(self) -> int:
        return len(self.train_files) + len(self.test_files or [])


def data_file_problem(path: str, kind: str, when_missing: str) -> str | None:
    """Why `path` is not a readable file of `kind` (e.g. "a CSV file"), or None;
    `when_missing` says what to give when no path is set."""
    if not path:
        return f"no file given ({when_missing})"
    file = Path(path).expanduser()
    if file.is_dir():
        return f"{printable(path)} is a folder, not {kind}"
    if not file.is_file():
        return f"no such file {printable(path)}"
    return None


DATASETS: Registry[type[Dataset]] = Registry("dataset")
register_dataset = DATASETS.register


def list_datasets() -> list[str]:
    return DATASETS.names()


def get_dataset(name: str) -> Dataset:
    return DATASETS.get(name)()


def dataset_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with `params`; unknown keys raise ValueError."""
    defaults = DATASETS.get(name).defaults
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(
            f"dataset '{name}' has no parameter {', '.join(repr(u) for u in unknown)} "
            f"(it takes: {', '.join(defaults) or 'none'})"
        )
    return {**defaults, **params}


@dataclass
class Splits:
    """The splits ready for training, normalised with statistics of the train split only.

    `x_train`, `x_val`, `x_test` are tensors when the inputs are in memory, None when a
    stream loader reads them from files; `inputs(split)` gives them either way. `loader`
    is the loader chosen for the run (memory or stream), `loader_reason` the log's line.
    """

    x_train: torch.Tensor | None
    y_train: torch.Tensor
    x_val: torch.Tensor | None
    y_val: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: list[str]
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    test_is_official: bool = True
    loader: str = "memory"
    loader_reason: str = ""
    files: dict[str, Examples] = field(default_factory=dict)  # split -> inputs from files

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}

    def inputs(self, split: str) -> Examples:
        """The inputs of "train", "val" or "test", in memory or read from files."""
        tensor = getattr(self, f"x_{split}")
        return self.files[split] if tensor is None else TensorExamples(tensor)


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * fraction))
    return order[cut:], order[:cut]


def split_rows(n: int, has_test: bool, val_fraction: float, seed: int, test_fraction: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Rows of the dataset's training examples that make the train and val splits, and
    those carved off as the test split (None when the dataset has its own)."""
    rows, test_rows = np.arange(n), None
    if not has_test:
        rows, test_rows = _split(n, test_fraction, TEST_SPLIT_SEED)
    train, val = _split(len(rows), val_fraction, seed)
    return rows[train], rows[val], test_rows


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per channel for (N, C, ...) data, one value for flat (N, D) data."""
    if x.ndim <= 2:
        mean, std = np.array([x.mean()]), np.array([x.std()])
    else:
        axes = tuple(i for i in range(x.ndim) if i != 1)
        mean, std = x.mean(axis=axes), x.std(axis=axes)
    return mean.astype(np.float64), np.maximum(std, 1e-8).astype(np.float64)


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return normalise_batch(x, mean, std)


def prepare_data(
    name: str,
    path: str,
    params: dict[str, Any],
    val_fraction: float,
    seed: int,
    test_fraction: float = 0.2,
    loader: str = "memory",
    augment: str = "none",
    workers: int = 0,
) -> Splits:
    """Load a dataset (or, for a stream loader over files, list them), carve validation
    (and, if it has none, test) splits, and normalise with cached train statistics.

    `loader` is memory, stream or auto (see `loaders.choose_loader`); `workers` decode a
    stream of files in that many processes (evaluation and statistics too)."""
    dataset = get_dataset(name)
    full_params = dataset_params(name, params)
    info = dataset.describe(path, full_params)
    problem = augment_problem(augment, info.input_shape)
    if problem:
        raise ValueError(problem)
    split = {"val_fraction": val_fraction, "seed": seed, "test_fraction": test_fraction,
             "test_seed": TEST_SPLIT_SEED}
    files = dataset.files(path, full_params)
    if files is not None:
        decoded = files.count() * math.prod(info.input_shape) * 4
        chosen, reason = choose_loader(loader, augment, decoded, workers)
        stamps = path_stamps(path, [*files.train_files, *(files.test_files or [])])
        key = stats_key(name, path, full_params, split, stamps)
        if chosen == "stream":
            splits = _file_splits(files, info, val_fraction, seed, test_fraction, workers, key)
            splits.loader, splits.loader_reason = chosen, reason
            return splits
        raw = dataset.load(path, full_params)
    else:
        raw = dataset.load(path, full_params)
        decoded = sum(a.size * 4 for a in (raw.x_train, raw.x_test) if a is not None)
        chosen, reason = choose_loader(loader, augment, decoded, workers)
        key = stats_key(name, path, full_params, split, path_stamps(path))
    x, y = raw.x_train.astype(np.float32), raw.y_train.astype(np.int64)
    test_is_official = raw.x_test is not None
    train_rows, val_rows, test_rows = split_rows(len(y), test_is_official, val_fraction, seed,
                                                 test_fraction)
    if test_rows is None:
        x_test, y_test = raw.x_test.astype(np.float32), raw.y_test.astype(np.int64)
    else:
        x_test, y_test = x[test_rows], y[test_rows]
    x_train, y_train = x[train_rows], y[train_rows]
    if files is not None:  # as a stream of the same files computes them
        mean, std = cached_stats(key, lambda: streamed_stats(
            x_train[i:i + STATS_CHUNK] for i in range(0, len(x_train), STATS_CHUNK)))
    else:
        mean, std = cached_stats(key, lambda: channel_stats(x_train))

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(normalise(a, mean, std).reshape(len(a), *info.input_shape))

    return Splits(
        x_train=tensor(x_train),
        y_train=torch.from_numpy(y_train),
        x_val=tensor(x[val_rows]),
        y_val=torch.from_numpy(y[val_rows]),
        x_test=tensor(x_test),
        y_test=torch.from_numpy(y_test),
        input_shape=info.input_shape,
        num_classes=info.num_classes,
        class_names=raw.class_names,
        mean=mean.tolist(),
        std=std.tolist(),
        test_is_official=test_is_official,
        loader=chosen,
        loader_reason=reason,
    )


def _file_splits(files: FileSplits, info: DatasetInfo, val_fraction: float, seed: int,
                 test_fraction: float, workers: int, key: str) -> Splits:
    """Splits whose inputs stay in their files; statistics streamed over the train split."""
    labels = files.train_labels.astype(np.int64)
    test_is_official = files.test_files is not None
    train_rows, val_rows, test_rows = split_rows(len(labels), test_is_official, val_fraction,
                                                 seed, test_fraction)

    def pick(rows: np.ndarray) -> list[str]:
        return [files.train_files[i] for i in rows]

    shape = tuple(info.input_shape)
    train_files = pick(train_rows)
    raw_train = FileExamples(train_files, files.decoder, shape, workers=workers)
    mean, std = cached_stats(key, lambda: streamed_stats(
        chunk.numpy() for chunk in raw_train.chunks(STATS_CHUNK)))
    if test_rows is None:
        test_files, y_test = files.test_files, files.test_labels.astype(np.int64)
    else:
        test_files, y_test = pick(test_rows), labels[test_rows]

    def examples(names: list[str]) -> FileExamples:
        return FileExamples(names, files.decoder, shape, mean, std, workers, key)

    return Splits(
        x_train=None, y_train=torch.from_numpy(labels[train_rows]),
        x_val=None, y_val=torch.from_numpy(labels[val_rows]),
        x_test=None, y_test=torch.from_numpy(y_test),
        input_shape=info.input_shape, num_classes=info.num_classes,
        class_names=files.class_names, mean=mean.tolist(), std=std.tolist(),
        test_is_official=test_is_official,
        files={"train": examples(train_files), "val": examples(pick(val_rows)),
               "test": examples(test_files)},
    )


def select_labelled(labels: torch.Tensor, count: int, num_classes: int, seed: int
                    ) -> torch.Tensor:
    """Indices of `count` examples whose labels the student may use: class-balanced and seeded.

    Each class gets `count // num_classes` examples (or all it has), and the rest of the
    budget goes to randomly chosen examples of the other classes, so the result never holds
    more than `count` indices. Sorted, so it does not depend on the order of selection.
    """
    count = min(int(count), len(labels))
    generator = torch.Generator().manual_seed(seed)
    chosen: list[torch.Tensor] = []
    leftovers: list[torch.Tensor] = []
    share = count // num_classes
    for cls in range(num_classes):
        members = torch.nonzero(labels == cls).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        chosen.append(members[:share])
        leftovers.append(members[share:])
    rest = torch.cat(leftovers)
    rest = rest[torch.randperm(len(rest), generator=generator)]
    picked = torch.cat(chosen)
    picked = torch.cat([picked, rest[: count - len(picked)]])
    return picked.sort().values


def prepare_transfer_inputs(name: str, path: str, params: dict[str, Any], splits: Splits
                            ) -> torch.Tensor:
    """Inputs of another dataset used as a transfer set, normalised with the statistics of
    the main training split. Its labels, if it has any, are dropped here."""
    dataset = get_dataset(name)
    full_params = dataset_params(name, params)
    info = dataset.describe(path, full_params)
    if tuple(info.input_shape) != tuple(splits.input_shape):
        raise ValueError(f"transfer dataset '{name}' gives inputs shaped {info.input_shape}, "
                         f"the training data {splits.input_shape}")
    raw = dataset.load(path, full_params)
    x = raw.x_train.astype(np.float32)
    normalised = normalise(x, np.asarray(splits.mean), np.asarray(splits.std))
    return torch.from_numpy(normalised.reshape(len(x), *splits.input_shape))


import_submodules(__name__)
