"""Datasets read from files: IDX folders (Fashion-MNIST and the MNIST format)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np

from kdstudio.core.data import Dataset, DatasetInfo, RawData, register_dataset, whole_number

FASHION_MNIST_DEFAULT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (LeCun's MNIST format), gzip-compressed or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(IDX_DTYPES[data[2]])
    body = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(shape))} values")
    return body.reshape(shape)


def find_idx_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


@register_dataset("fashion-mnist")
class FashionMNIST(Dataset):
    """Zalando's Fashion-MNIST: 60,000 + 10,000 greyscale 28x28 images, 10 clothing classes."""

    defaults = {"train_limit": 0}
    needs_path = True
    description = "Fashion-MNIST IDX files, 28x28 (folder; Debian: dataset-fashion-mnist)"

    def folder(self, path: str) -> Path:
        return Path(path or FASHION_MNIST_DEFAULT).expanduser()

    def check_path(self, path: str) -> str | None:
        folder = self.folder(path)
        missing = [stem for stem in IDX_FILES.values() if find_idx_file(folder, stem) is None]
        if not missing:
            return None
        return (
            f"Fashion-MNIST files not found in {folder} (missing {', '.join(missing)}); "
            f"put the four IDX files (.gz or not) there, or install the Debian package "
            f"dataset-fashion-mnist which puts them in {FASHION_MNIST_DEFAULT}"
        )

    def describe(self, path: str, params: dict[str, Any]) -> DatasetInfo:
        whole_number(params, "train_limit", 0)
        return DatasetInfo((1, 28, 28), 10, FASHION_MNIST_CLASSES)

    def load(self, path: str, params: dict[str, Any]) -> RawData:
        problem = self.check_path(path)
        if problem:
            raise FileNotFoundError(problem)
        folder = self.folder(path)
        arrays = {key: read_idx(find_idx_file(folder, stem)) for key, stem in IDX_FILES.items()}
        limit = int(params["train_limit"]) or len(arrays["y_train"])
        return RawData(
            (arrays["x_train"][:limit, None] / 255.0).astype(np.float32),
            arrays["y_train"][:limit].astype(np.int64),
            (arrays["x_test"][:, None] / 255.0).astype(np.float32),
            arrays["y_test"].astype(np.int64),
            FASHION_MNIST_CLASSES,
        )
