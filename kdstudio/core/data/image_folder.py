"""Images in a folder: one sub-folder per class, or `train/` and `test/` that each hold them.

Files are decoded with Pillow (PNG, JPEG, BMP, WebP), converted to grey ("L") or RGB,
resized to `image_size` and given as (N, C, H, W) float32 in [0, 1]. Labels number the
class folders in sorted order; hidden entries (a leading dot) and files without an image
extension are skipped, and sub-folders inside a class folder are not read.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdstudio.core.data import (
    DataFileError,
    Dataset,
    DatasetInfo,
    FileSplits,
    RawData,
    register_dataset,
)
from kdstudio.core.memory import format_bytes, memory_problem

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
CHANNEL_MODES = {1: "L", 3: "RGB"}
MAX_SIDE = 4096
# prepare_data holds about four arrays of the images' size at its peak: the decoded array,
# its float32 copy, the train/test split copies and their normalised tensors
PEAK_COPIES = 4


@dataclass(frozen=True)
class FolderLayout:
    """The class names and, per split ("train", and "test" when given), each class's images."""

    class_names: list[str]
    splits: dict[str, list[list[Path]]]

    def count(self) -> int:
        return sum(len(files) for split in self.splits.values() for files in split)


def image_size(params: dict[str, Any]) -> tuple[int, int]:
    """`params["image_size"]` as (height, width); raises ValueError naming the key."""
    value = params["image_size"]
    sides = list(value) if isinstance(value, (list, tuple)) else None
    if sides is not None and len(sides) == 2:
        sides = [int(s) if isinstance(s, float) and math.isfinite(s) and s.is_integer()
                 else s for s in sides]
        if all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_SIDE
               for s in sides):
            return sides[0], sides[1]
    raise ValueError(f"image_size must be [height, width], two whole numbers from 1 to "
                     f"{MAX_SIDE} (got {value!r})")


def channels(params: dict[str, Any]) -> int:
    """`params["channels"]`: 1 (grey) or 3 (RGB); raises ValueError naming the key."""
    value = params["channels"]
    if isinstance(value, float) and value in (1.0, 3.0):
        value = int(value)
    if isinstance(value, bool) or value not in CHANNEL_MODES:
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB) (got {value!r})")
    return int(value)


def _entries(folder: Path, want_folders: bool) -> list[Path]:
    """The visible sub-folders (or files) of `folder`, sorted; scandir's entry types save
    a stat per file in large class folders."""
    with os.scandir(folder) as scan:  # sorted by name as strings: sorting Paths is slow
        found = sorted((e.name, e.path) for e in scan if not e.name.startswith(".")
                       and (e.is_dir() if want_folders else e.is_file()))
    return [Path(path) for _, path in found]


def _class_folders(folder: Path) -> dict[str, Path]:
    folders = {p.name: p for p in _entries(folder, want_folders=True)}
    if len(folders) < 2:
        found = f"only '{next(iter(folders))}'" if folders else "none"
        if set(folders) & {"train", "test"}:
            found += "; train/ and test/ are read as splits only when both are there"
        raise DataFileError(f"image folder {folder} needs at least two class sub-folders, one "
                         f"per class (found {found})")
    return folders


def _images(folder: Path) -> list[Path]:
    files = [p for p in _entries(folder, want_folders=False)
             if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise DataFileError(f"class folder {folder} holds no images "
                         f"({', '.join(IMAGE_EXTENSIONS)})")
    return files


def read_layout(path: str) -> FolderLayout:
    """The classes and image files under `path`, without decoding; raises DataFileError naming
    the folder that is wrong (validation reports it as `data.path`)."""
    if not path.strip():
        raise DataFileError("no folder given: set data.path to a folder holding one sub-folder "
                         "per class (or train/ and test/ folders that hold them)")
    try:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise DataFileError(f"image folder {root} does not exist or is not a folder")
        split_roots = {"train": root / "train", "test": root / "test"}
        if not all(p.is_dir() for p in split_roots.values()):
            split_roots = {"train": root}
        classes = {split: _class_folders(folder) for split, folder in split_roots.items()}
        if "test" in classes and sorted(classes["train"]) != sorted(classes["test"]):
            only_train = sorted(set(classes["train"]) - set(classes["test"]))
            only_test = sorted(set(classes["test"]) - set(classes["train"]))
            raise DataFileError(
                f"image folder {root}: train/ and test/ hold different classes (only in "
                f"train/: {', '.join(only_train) or 'none'}; only in test/: "
                f"{', '.join(only_test) or 'none'})")
        names = sorted(classes["train"])
        splits = {split: [_images(found[name]) for name in names]
                  for split, found in classes.items()}
    except (OSError, RuntimeError) as error:  # unreadable folder, unknown ~user
        raise DataFileError(f"cannot read image folder {path!r} ({error})") from None
    return FolderLayout(names, splits)


def decode(file: str | Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    """One image as (C, H, W) float32 in [0, 1] (C is 1 for a 16-bit grey file);
    raises ValueError naming the file."""
    from PIL import Image

    try:
        with Image.open(file) as image:
            if image.mode.startswith("I"):  # 16-bit grey: scaled, not clipped, to [0, 1]
                levels = np.asarray(image, dtype=np.float32) / np.float32(65535.0)
                converted, top = Image.fromarray(np.clip(levels, 0.0, 1.0)), 1.0
            else:
                converted, top = image.convert(mode), 255.0
        if converted.size != (size[1], size[0]):
            converted = converted.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        pixels = np.asarray(converted, dtype=np.float32) / np.float32(top)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"{file} is not a readable image ({error})") from None
    # (1, H, W) for grey; the caller's array broadcasts it to three channels for RGB
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


@register_dataset("image-folder")
class ImageFolder(Dataset):
    """Images sorted into one folder per class (or train/ and test/ that hold them)."""

    defaults = {"image_size": [32, 32], "channels": 3}
    needs_path = True
    description = ("Images in one sub-folder per class, or train/ and test/ holding them "
                   "(PNG, JPEG, BMP, WebP; resized to image_size [H, W]; channels 1 or 3; "
                   "values in [0, 1])")

    def check_path(self, path: str) -> str | None:
        try:
            read_layout(path)
        except ValueError as error:
            return str(error)
        return None

    def describe(self, path: str, params: dict[str, Any]) -> DatasetInfo:
        return self._read(path, params)[0]

    def _read(self, path: str, params: dict[str, Any]) -> tuple[DatasetInfo, FolderLayout]:
        height, width = image_size(params)
        depth = channels(params)
        layout = read_layout(path)
        info = DatasetInfo((depth, height, width), len(layout.class_names), layout.class_names)
        return info, layout

    def _memory_problem(self, path: str, info: DatasetInfo, layout: FolderLayout
                        ) -> str | None:
        depth, height, width = info.input_shape
        need = PEAK_COPIES * layout.count() * depth * height * width * 4
        problem = memory_problem(f"image folder {path}: {layout.count():,} images of "
                                 f"{depth}x{height}x{width} ({format_bytes(need // PEAK_COPIES)}"
                                 f" decoded, about {PEAK_COPIES} copies while preparing)", need)
        return problem and f"{problem} (data.loader = stream reads them from the files instead)"

    def memory_problem(self, path: str, params: dict[str, Any]) -> str | None:
        return self._memory_problem(path, *self._read(path, params))

    def files(self, path: str, params: dict[str, Any]) -> FileSplits:
        info, layout = self._read(path, params)
        decoder = Decoder(CHANNEL_MODES[info.input_shape[0]], info.input_shape)
        found: dict[str, tuple[list[str], np.ndarray]] = {}
        for split, per_class in layout.splits.items():
            names = [str(file) for files in per_class for file in files]
            labels = np.repeat(np.arange(len(per_class), dtype=np.int64),
                               [len(files) for files in per_class])
            found[split] = (names, labels)
        test_files, test_labels = found.get("test", (None, None))
        return FileSplits(*found["train"], test_files, test_labels, decoder,
                          layout.class_names)

    def load(self, path: str, params: dict[str, Any]) -> RawData:
        info, layout = self._read(path, params)
        problem = self._memory_problem(path, info, layout)
        if problem:
            raise ValueError(problem)
        mode, size = CHANNEL_MODES[info.input_shape[0]], info.input_shape[1:]
        arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for split, per_class in layout.splits.items():
            count = sum(len(files) for files in per_class)
            x = np.empty((count, *info.input_shape), dtype=np.float32)
            y = np.empty(count, dtype=np.int64)
            row = 0
            for label, files in enumerate(per_class):
                for file in files:
                    x[row] = decode(file, mode, size)
                    y[row] = label
                    row += 1
            arrays[split] = (x, y)
        x_test, y_test = arrays.get("test", (None, None))
        return RawData(*arrays["train"], x_test, y_test, layout.class_names)


class Decoder:
    """One image file as (C, H, W) float32 in [0, 1], as `load` gives it (picklable, for a
    stream loader's worker processes)."""

    def __init__(self, mode: str, shape: tuple[int, ...]) -> None:
        self.mode, self.shape = mode, tuple(shape)

    def __call__(self, file: str) -> np.ndarray:
        pixels = decode(file, self.mode, self.shape[1:])  # a str: no Path per file
        return pixels if pixels.shape == self.shape else np.broadcast_to(pixels, self.shape)
