"""A look at a dataset before a run: input shape, classes with counts per split as a run
splits them, and a few samples (images as uint8 arrays, or the first rows of a table).

Cheap where it can be: an image folder is counted from its file listing and only the
sampled images are decoded; CIFAR and IDX files are read as bytes, never as float32 copies.
Other datasets are loaded whole (the window calls this off its GUI thread). Errors are the
datasets' own `DataFileError` / `ValueError`, naming the file (and row and column).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdstudio.core.data import (
    TEST_SPLIT_SEED,
    DataFileError,
    DatasetInfo,
    _split,
    dataset_params,
    get_dataset,
)
from kdstudio.core.data.cifar import CifarBase
from kdstudio.core.data.csv_table import CsvTable, first_rows
from kdstudio.core.data.files import IDX_FILES, FashionMNIST, find_idx_file, read_idx
from kdstudio.core.data.image_folder import CHANNEL_MODES, ImageFolder, decode, read_layout

SAMPLES = 12
TABLE_ROWS = 5
TABLE_COLUMNS = 16  # flat arrays: features shown beside the label
SPLITS = ("train", "val", "test")


@dataclass
class DatasetPreview:
    """What the form shows of a dataset. `images` are (H, W) grey or (H, W, 3) RGB uint8
    with their class index; `columns` and `rows` are the first rows of a table, as text."""

    input_shape: tuple[int, ...]
    class_names: list[str]
    counts: dict[str, list[int]]  # split -> examples per class
    test_is_official: bool
    images: list[tuple[np.ndarray, int]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        return {split: int(sum(self.counts[split])) for split in SPLITS}

    def empty_splits(self) -> list[str]:
        return [split for split, total in self.totals().items() if total == 0]

    def summary(self) -> str:
        """E.g. "3 × 32 × 32 images, 10 classes; train 45,000 · val 5,000 · test 10,000"."""
        shape = " × ".join(str(side) for side in self.input_shape)
        if self.is_image():
            what = f"{shape} images"
        elif len(self.input_shape) == 1:
            what = f"{self.input_shape[0]:,} features"
        else:
            what = f"inputs of {shape}"
        classes = len(self.class_names)
        totals = " · ".join(f"{split} {total:,}" for split, total in self.totals().items())
        carved = "" if self.test_is_official else " (test carved from the data)"
        return f"{what}, {classes} class{'es' if classes != 1 else ''}; {totals}{carved}"

    def is_image(self) -> bool:
        return bool(self.images)


def split_counts(y: np.ndarray, y_test: np.ndarray | None, num_classes: int,
                 val_fraction: float, test_fraction: float, seed: int
                 ) -> dict[str, list[int]]:
    """Examples per class in train, val and test, split exactly as `prepare_data` splits."""
    if y_test is None:
        keep, test_idx = _split(len(y), test_fraction, TEST_SPLIT_SEED)
        y, y_test = y[keep], y[test_idx]
    train_idx, val_idx = _split(len(y), val_fraction, seed)

    def count(labels: np.ndarray) -> list[int]:
        return np.bincount(labels, minlength=num_classes)[:num_classes].tolist()

    return {"train": count(y[train_idx]), "val": count(y[val_idx]), "test": count(y_test)}


def sample_indices(y: np.ndarray, num_classes: int, count: int = SAMPLES) -> list[int]:
    """Up to `count` indices taking each class in turn (its first examples first)."""
    members = [np.flatnonzero(y == c) for c in range(num_classes)]
    picked: list[int] = []
    depth = 0
    while len(picked) < count and any(depth < len(m) for m in members):
        picked += [int(m[depth]) for m in members if depth < len(m)][: count - len(picked)]
        depth += 1
    return picked


def as_uint8_image(x: np.ndarray, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """A (C, H, W) or (H, W) array scaled from [low, high] to uint8 (H, W) or (H, W, 3)."""
    scale = 255.0 / (high - low) if high > low else 0.0
    pixels = np.clip((x.astype(np.float32) - low) * scale, 0, 255).round().astype(np.uint8)
    if pixels.ndim == 3:
        pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    return np.ascontiguousarray(pixels)


def _image_like(shape: tuple[int, ...]) -> bool:
    return (len(shape) == 3 and shape[0] in (1, 3)) or (len(shape) == 2 and min(shape) >= 4)


def preview_dataset(name: str, path: str, params: dict[str, Any], val_fraction: float,
                    test_fraction: float, seed: int) -> DatasetPreview:
    """The preview of a dataset as a run with these fractions and seed would see it."""
    dataset = get_dataset(name)
    full = dataset_params(name, params)
    info = dataset.describe(path, full)
    if isinstance(dataset, ImageFolder):
        return _image_folder(path, info, val_fraction, test_fraction, seed)
    if isinstance(dataset, CifarBase):
        names, (x, y), (x_test, y_test) = dataset.pixel_arrays(path, full)
        info = DatasetInfo(info.input_shape, info.num_classes, names)
        shaped = x.reshape(-1, *info.input_shape)
        return _from_arrays(info, shaped, y, y_test, val_fraction, test_fraction, seed, 255)
    if isinstance(dataset, FashionMNIST):
        folder = dataset.folder(path)
        problem = dataset.check_path(path)
        if problem:
            raise DataFileError(problem)
        x = read_idx(find_idx_file(folder, IDX_FILES["x_train"]))
        y = read_idx(find_idx_file(folder, IDX_FILES["y_train"])).astype(np.int64)
        y_test = read_idx(find_idx_file(folder, IDX_FILES["y_test"])).astype(np.int64)
        limit = int(full["train_limit"]) or len(y)
        return _from_arrays(info, x[:limit, None], y[:limit], y_test, val_fraction,
                            test_fraction, seed, 255)
    raw = dataset.load(path, full)
    info = DatasetInfo(info.input_shape, info.num_classes, list(raw.class_names))
    x = raw.x_train.reshape(len(raw.x_train), *info.input_shape)
    preview = _from_arrays(info, x, raw.y_train, raw.y_test, val_fraction, test_fraction,
                           seed, None)
    if isinstance(dataset, CsvTable):
        preview.columns, preview.rows = first_rows(path, TABLE_ROWS)
    return preview


def _from_arrays(info: DatasetInfo, x: np.ndarray, y: np.ndarray, y_test: np.ndarray | None,
                 val_fraction: float, test_fraction: float, seed: int, top: float | None
                 ) -> DatasetPreview:
    """A preview from arrays held in memory; `top` is the pixels' full scale (None: the
    samples' own range, for images given as arbitrary numbers)."""
    y = y.astype(np.int64)
    preview = DatasetPreview(
        tuple(info.input_shape), list(info.class_names),
        split_counts(y, None if y_test is None else y_test.astype(np.int64), info.num_classes,
                     val_fraction, test_fraction, seed),
        test_is_official=y_test is not None)
    picked = sample_indices(y, info.num_classes)
    if _image_like(tuple(info.input_shape)):
        chosen = x[picked].astype(np.float32)
        if top is not None:
            low, high = 0.0, top
        else:  # [0, 1] and [0, 255] data as they are, anything else stretched
            low, high = float(chosen.min(initial=0)), float(chosen.max(initial=0))
            if low >= 0 and high <= 1:
                low, high = 0.0, 1.0
            elif low >= 0 and high <= 255:
                low, high = 0.0, 255.0
        preview.images = [(as_uint8_image(image, low, high), int(y[i]))
                          for image, i in zip(chosen, picked, strict=True)]
    else:
        flat = x.reshape(len(x), -1)
        width = min(flat.shape[1], TABLE_COLUMNS)
        preview.columns = ["label", *(f"x{j}" for j in range(width))]
        preview.rows = [[info.class_names[int(y[i])] if int(y[i]) < len(info.class_names)
                         else str(int(y[i])), *(f"{v:.4g}" for v in flat[i, :width])]
                        for i in range(min(TABLE_ROWS, len(flat)))]
    return preview


def _image_folder(path: str, info: DatasetInfo, val_fraction: float, test_fraction: float,
                  seed: int) -> DatasetPreview:
    """Counted from the listing; only the sampled files are decoded."""
    layout = read_layout(path)
    per_class = {split: [len(files) for files in classes]
                 for split, classes in layout.splits.items()}

    def labels(split: str) -> np.ndarray:
        return np.repeat(np.arange(len(layout.class_names)), per_class[split])

    y = labels("train")
    y_test = labels("test") if "test" in layout.splits else None
    preview = DatasetPreview(
        tuple(info.input_shape), list(layout.class_names),
        split_counts(y, y_test, info.num_classes, val_fraction, test_fraction, seed),
        test_is_official=y_test is not None)
    mode, size = CHANNEL_MODES[info.input_shape[0]], info.input_shape[1:]
    files = [file for classes in layout.splits["train"] for file in classes]
    for index in sample_indices(y, info.num_classes):
        image = np.broadcast_to(decode(Path(files[index]), mode, size), info.input_shape)
        preview.images.append((as_uint8_image(image), int(y[index])))
    return preview
