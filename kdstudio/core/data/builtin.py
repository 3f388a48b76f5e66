"""Datasets that need no files: scikit-learn digits, MNIST-1D and Gaussian clusters."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np

from kdstudio.core.data import Dataset, DatasetInfo, RawData, register_dataset, whole_number
from kdstudio.core.memory import memory_problem
from kdstudio.core.paths import cache_dir

DIGIT_NAMES = [str(i) for i in range(10)]
MAX_CLASSES = 100_000
def synthetic_bytes(samples: int, dims: int, classes: int) -> int:
    """Peak bytes while the Gaussian clusters are drawn and split: three float64 arrays of
    samples x dims alive at once, the class centres and the labels."""
    return 24 * samples * dims + 8 * classes * dims + 16 * samples


@register_dataset("digits")
class Digits(Dataset):
    """scikit-learn's 1,797 handwritten digits, 8x8 grey levels 0-16 (bundled, offline)."""

    defaults = {"as_image": True}
    description = "1,797 handwritten digits, 8x8 (scikit-learn, offline)"

    def describe(self, path: str, params: dict[str, Any]) -> DatasetInfo:
        shape = (1, 8, 8) if params["as_image"] else (64,)
        return DatasetInfo(shape, 10, DIGIT_NAMES)

    def load(self, path: str, params: dict[str, Any]) -> RawData:
        x, y = _digits_arrays()
        if params["as_image"]:
            x = x.reshape(-1, 1, 8, 8)
        return RawData(x, y, None, None, DIGIT_NAMES)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits as scikit-learn ships them (`digits.csv.gz`: 64 pixels, then the label).

    The file is read directly: importing `sklearn.datasets` costs about a second and holds
    the interpreter lock for 100 ms at a time, which would freeze the window at Start.
    """
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    bundled = [Path(p) / "datasets" / "data" / "digits.csv.gz" for p in locations]
    if bundled and bundled[0].is_file():
        table = np.loadtxt(bundled[0], delimiter=",", dtype=np.float32)
        return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits  # a layout we do not know: the public API

    bunch = load_digits()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


@register_dataset("mnist1d")
class MNIST1D(Dataset):
    """MNIST-1D (Greydanus 2020): 4,000 train + 1,000 test sequences of length 40.

    Generated locally with the `mnist1d` package's `make_dataset` and cached on disk; its
    `get_dataset` (which downloads) is never called.
    """

    defaults = {"generator_seed": 42}
    official_test = True
    description = "MNIST-1D, 4,000 + 1,000 sequences of length 40 (generated offline)"

    def describe(self, path: str, params: dict[str, Any]) -> DatasetInfo:
        whole_number(params, "generator_seed", 0, 2**32 - 1)  # numpy's legacy seed range
        return DatasetInfo((1, 40), 10, DIGIT_NAMES)

    def load(self, path: str, params: dict[str, Any]) -> RawData:
        cache = cache_dir() / f"mnist1d-seed{int(params['generator_seed'])}.npz"
        if not cache.exists():
            _generate_mnist1d(cache, int(params["generator_seed"]))
        with np.load(cache) as arrays:
            return RawData(
                arrays["x"].reshape(-1, 1, 40), arrays["y"],
                arrays["x_test"].reshape(-1, 1, 40), arrays["y_test"], DIGIT_NAMES,
            )


def _generate_mnist1d(target: Path, seed: int) -> None:
    from mnist1d.data import get_dataset_args, make_dataset  # lazy: pulls matplotlib

    args = get_dataset_args()
    args.seed = seed
    data = make_dataset(args)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".tmp.npz")
    np.savez_compressed(
        partial, x=data["x"], y=data["y"], x_test=data["x_test"], y_test=data["y_test"]
    )
    partial.replace(target)


@register_dataset("synthetic")
class Synthetic(Dataset):
    """Seeded Gaussian clusters: one centre per class, unit-variance noise around it."""

    defaults = {"samples": 2000, "dims": 20, "classes": 4, "separation": 1.5, "data_seed": 0}
    description = "Gaussian clusters (samples, dims, classes), seeded"

    def describe(self, path: str, params: dict[str, Any]) -> DatasetInfo:
        samples = whole_number(params, "samples", 1)
        dims = whole_number(params, "dims", 1)
        classes = whole_number(params, "classes", 2)
        whole_number(params, "data_seed", 0)
        separation = params["separation"]
        if isinstance(separation, bool) or not isinstance(separation, (int, float)) or not (
            math.isfinite(separation)
        ):
            raise ValueError(f"separation must be a finite number (got {separation!r})")
        if classes > MAX_CLASSES:
            raise ValueError(f"classes must be at most {MAX_CLASSES:,} (got {classes:,})")
        problem = memory_problem(f"synthetic data of {samples:,} samples x {dims:,} dims",
                                 synthetic_bytes(samples, dims, classes))
        if problem:
            raise ValueError(problem)
        return DatasetInfo((dims,), classes, [f"class {i}" for i in range(classes)])

    def load(self, path: str, params: dict[str, Any]) -> RawData:
        info = self.describe(path, params)
        rng = np.random.default_rng(int(params["data_seed"]))
        dims, samples = info.input_shape[0], int(params["samples"])
        centres = rng.normal(0.0, float(params["separation"]), size=(info.num_classes, dims))
        y = rng.integers(0, info.num_classes, size=samples)
        x = centres[y] + rng.normal(size=(samples, dims))
        return RawData(x.astype(np.float32), y.astype(np.int64), None, None, info.class_names)
