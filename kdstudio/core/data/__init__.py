"""Dataset registry and the preparation every run shares: split, normalise, batch.

A dataset file subclasses `Dataset` and decorates it with `@register_dataset("name")`.
`describe` must be cheap (no loading): validation uses it to check model shapes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

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
    """Tensors ready for training: normalised with statistics of the train split only."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: list[str]
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    test_is_official: bool = True

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * fraction))
    return order[cut:], order[:cut]


def channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per channel for (N, C, ...) data, one value for flat (N, D) data."""
    if x.ndim <= 2:
        mean, std = np.array([x.mean()]), np.array([x.std()])
    else:
        axes = tuple(i for i in range(x.ndim) if i != 1)
        mean, std = x.mean(axis=axes), x.std(axis=axes)
    return mean.astype(np.float64), np.maximum(std, 1e-8).astype(np.float64)


def normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    if x.ndim <= 2:
        return ((x - mean[0]) / std[0]).astype(np.float32)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return ((x - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)


def prepare_data(
    name: str,
    path: str,
    params: dict[str, Any],
    val_fraction: float,
    seed: int,
    test_fraction: float = 0.2,
) -> Splits:
    """Load a dataset, carve validation (and, if it has none, test) splits, normalise."""
    dataset = get_dataset(name)
    full_params = dataset_params(name, params)
    info = dataset.describe(path, full_params)
    raw = dataset.load(path, full_params)
    x, y = raw.x_train.astype(np.float32), raw.y_train.astype(np.int64)
    test_is_official = raw.x_test is not None
    if raw.x_test is None:
        keep, test_idx = _split(len(y), test_fraction, TEST_SPLIT_SEED)
        x_test, y_test = x[test_idx], y[test_idx]
        x, y = x[keep], y[keep]
    else:
        x_test, y_test = raw.x_test.astype(np.float32), raw.y_test.astype(np.int64)
    train_idx, val_idx = _split(len(y), val_fraction, seed)
    x_train, y_train = x[train_idx], y[train_idx]
    mean, std = channel_stats(x_train)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(normalise(a, mean, std).reshape(len(a), *info.input_shape))

    return Splits(
        x_train=tensor(x_train),
        y_train=torch.from_numpy(y_train),
        x_val=tensor(x[val_idx]),
        y_val=torch.from_numpy(y[val_idx]),
        x_test=tensor(x_test),
        y_test=torch.from_numpy(y_test),
        input_shape=info.input_shape,
        num_classes=info.num_classes,
        class_names=raw.class_names,
        mean=mean.tolist(),
        std=std.tolist(),
        test_is_official=test_is_official,
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
