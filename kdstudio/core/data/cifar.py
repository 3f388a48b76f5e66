"""CIFAR-10 and CIFAR-100 from a folder holding the official files, binary or python version.

Images come as (N, 3, 32, 32) float32 in [0, 1] (pixel / 255, as Fashion-MNIST), channels
red, green, blue, rows top to bottom; labels as int64 (CIFAR-100: the fine labels).
The python version is pickled; `SafeUnpickler` reads it admitting only numpy's array
reconstruction, so a poisoned file is refused before anything in it runs.
"""

from __future__ import annotations

import contextlib
import functools
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kdstudio.core.data import (
    DataFileError,
    Dataset,
    DatasetInfo,
    RawData,
    register_dataset,
    whole_number,
)

IMAGE_SHAPE = (3, 32, 32)
PIXELS = 3 * 32 * 32


def _array_reconstruct() -> Any:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


# (module, name) -> the object: exactly what the official pickles refer to
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _array_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _array_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global that is not in ALLOWED_GLOBALS."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that builds only containers, strings, numbers and numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise RefusedGlobal(f"{module}.{name}"[:120])
        return allowed

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("a persistent id, which CIFAR files never hold")


def read_pickle(path: Path) -> Any:
    """The object pickled in `path`, read with SafeUnpickler; raises ValueError naming it."""
    try:
        with path.open("rb") as handle:
            return SafeUnpickler(handle, encoding="bytes").load()
    except RefusedGlobal as refused:
        raise ValueError(f"{path}: refused to load it, it asks to run {refused} (a CIFAR file "
                         f"holds only numpy arrays, lists and strings); nothing in it was run"
                         ) from None
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
            IndexError, KeyError, MemoryError, OverflowError, RecursionError) as error:
        raise ValueError(f"{path} is not a readable CIFAR pickle ({error})") from None


@dataclass(frozen=True)
class Layout:
    """The files of one version: training batches, test batch, class names."""

    version: str
    train: tuple[str, ...]
    test: str
    meta: str

    def files(self) -> tuple[str, ...]:
        return (*self.train, self.test, self.meta)

    def text(self) -> str:
        first, last = self.train[0], self.train[-1]
        train = f"{first} … {last}" if len(self.train) > 2 else ", ".join(self.train)
        return f"the {self.version} ({train}, {self.test}, {self.meta})"


def _present(text: Any) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


class CifarBase(Dataset):
    """CIFAR in either official version; subclasses set the constants."""

    defaults: ClassVar[dict[str, Any]] = {"train_limit": 0}
    needs_path = True
    title: ClassVar[str]
    classes: ClassVar[int]
    label_byte: ClassVar[int]  # which byte of a binary record is the label
    record_bytes: ClassVar[int]
    label_key: ClassVar[str]
    names_key: ClassVar[str]
    layouts: ClassVar[tuple[Layout, Layout]]  # binary, python
    subfolders: ClassVar[tuple[str, ...]]  # where the official archives unpack

    def folder(self, path: str) -> tuple[Path, Layout | None]:
        """The folder holding a complete layout (the given one or an archive's sub-folder)."""
        try:
            base = Path(path).expanduser()
            for folder in (base, *(base / sub for sub in self.subfolders)):
                for layout in self.layouts:
                    if all((folder / name).is_file() for name in layout.files()):
                        return folder, layout
        except (OSError, ValueError, RuntimeError):  # no such user, a NUL, a name too long
            return Path(path), None
        return base, None

    def _missing_files(self, base: Path) -> str:
        if not _is_folder(base):
            where = f"{base} is not a folder"
        else:
            def missing(layout: Layout) -> list[str]:
                return [name for name in layout.files() if not (base / name).is_file()]

            closest = min(self.layouts, key=lambda layout: len(missing(layout)))
            where = f"{self.title} files missing in {base}: {', '.join(missing(closest))}"
        binary, python = self.layouts
        return f"{where}; the folder must hold {binary.text()} or {python.text()}"

    def check_path(self, path: str) -> str | None:
        if not path:
            return f"give the folder holding the {self.title} files"
        folder, layout = self.folder(path)
        if layout is None:
            return self._missing_files(folder)
        try:
            stamps = tuple((name, *_stamp(folder / name)) for name in layout.files())
        except OSError as error:
            return f"cannot read {folder}: {error}"
        return _first_problem(type(self), str(folder), layout, stamps)

    def describe(self, path: str, params: dict[str, Any]) -> DatasetInfo:
        whole_number(params, "train_limit", 0)
        names = [f"class {i}" for i in range(self.classes)]
        folder, layout = self.folder(path) if path else (Path(), None)
        if layout is not None:
            with contextlib.suppress(ValueError, OSError):  # check_path reports it
                names = self._names(folder, layout)
        return DatasetInfo(IMAGE_SHAPE, self.classes, names)

    def load(self, path: str, params: dict[str, Any]) -> RawData:
        limit = whole_number(params, "train_limit", 0)
        folder, layout = self.folder(path) if path else (Path(), None)
        if layout is None:
            raise FileNotFoundError(self.check_path(path))
        return self._read(folder, layout, limit)

    def pixel_arrays(self, path: str, params: dict[str, Any]
                     ) -> tuple[list[str], tuple[np.ndarray, np.ndarray],
                                tuple[np.ndarray, np.ndarray]]:
        """Class names, (train pixels uint8 (N, 3072), labels), (test pixels, labels), as
        `load` reads them (train_limit applied) but not converted to float32."""
        limit = whole_number(params, "train_limit", 0)
        folder, layout = self.folder(path) if path else (Path(), None)
        if layout is None:
            raise DataFileError(self.check_path(path))
        names, (x_train, y_train), test = self._arrays(folder, layout)
        if limit:
            x_train, y_train = x_train[:limit], y_train[:limit]
        return names, (x_train, y_train), test

    def _read(self, folder: Path, layout: Layout, limit: int) -> RawData:
        names, (x_train, y_train), (x_test, y_test) = self._arrays(folder, layout)
        if limit:
            x_train, y_train = x_train[:limit], y_train[:limit]
        return RawData(_as_images(x_train), y_train, _as_images(x_test), y_test, names)

    def _arrays(self, folder: Path, layout: Layout) -> tuple[list[str], tuple, tuple]:
        """Class names, (train pixels uint8 (N, 3072), labels), (test pixels, labels)."""
        names = self._names(folder, layout)
        parts = [self._batch(folder / name, layout) for name in layout.train]
        train = (np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]))
        return names, train, self._batch(folder / layout.test, layout)

    def _batch(self, path: Path, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
        """(pixels uint8 (N, 3072), labels int64) of one batch file."""
        if layout == self.layouts[0]:
            pixels, labels = self._binary_batch(path)
        else:
            pixels, labels = self._python_batch(path)
        bad = np.flatnonzero((labels < 0) | (labels >= self.classes))
        if len(bad):
            raise ValueError(f"{path}: record {bad[0]} has label {labels[bad[0]]}, outside "
                             f"0..{self.classes - 1} ({len(bad)} such record(s))")
        return pixels, labels

    def _binary_batch(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        data = np.fromfile(path, dtype=np.uint8)
        if data.size == 0 or data.size % self.record_bytes:
            raise ValueError(f"{path} is truncated or not a {self.title} binary batch: "
                             f"{data.size:,} bytes is not a whole number of "
                             f"{self.record_bytes}-byte records")
        records = data.reshape(-1, self.record_bytes)
        return records[:, self.record_bytes - PIXELS:], records[:, self.label_byte].astype(np.int64)

    def _python_batch(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        batch = _entries(path, read_pickle(path), ("data", self.label_key))
        pixels, labels = batch["data"], batch[self.label_key]
        if (not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8
                or pixels.ndim != 2 or pixels.shape[1] != PIXELS):
            raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, {PIXELS}) "
                             f"(got {_shape_text(pixels)})")
        try:
            labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{path}: '{self.label_key}' must be a list of whole numbers"
                             ) from None
        if len(labels) != len(pixels):
            raise ValueError(f"{path}: {len(labels)} labels for {len(pixels)} images")
        return pixels, labels

    def _names(self, folder: Path, layout: Layout) -> list[str]:
        path = folder / layout.meta
        if layout == self.layouts[0]:
            names = [line.strip() for line in path.read_text("utf-8", "replace").splitlines()]
            names = [name for name in names if name]
        else:
            names = _entries(path, read_pickle(path), (self.names_key,))[self.names_key]
            if not isinstance(names, (list, tuple)):
                raise ValueError(f"{path}: '{self.names_key}' must be a list of names")
            names = [_present(name) for name in names]
        if len(names) != self.classes:
            raise ValueError(f"{path} names {len(names)} classes, {self.title} has "
                             f"{self.classes}")
        return names


@functools.lru_cache(maxsize=8)
def _first_problem(kind: type[CifarBase], folder: str, layout: Layout, _stamps: tuple
                   ) -> str | None:
    """The first problem reading the files (cached while their sizes and times stay)."""
    try:
        kind()._arrays(Path(folder), layout)
    except (ValueError, OSError) as error:
        return str(error)
    return None


def _is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _stamp(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def _entries(path: Path, loaded: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """The pickled dict with its keys as text; raises ValueError naming a missing key."""
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} holds {type(loaded).__name__}, not the dict of a CIFAR file")
    entries = {_present(key): value for key, value in loaded.items()}
    missing = [key for key in keys if key not in entries]
    if missing:
        raise ValueError(f"{path} has no {', '.join(repr(k) for k in missing)} entry (it holds: "
                         f"{', '.join(sorted(entries)) or 'nothing'})")
    return entries


def _shape_text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__


def _as_images(pixels: np.ndarray) -> np.ndarray:
    return (pixels.reshape(-1, *IMAGE_SHAPE) / np.float32(255.0)).astype(np.float32)


def _layouts(binary: tuple[str, ...], python: tuple[str, ...]) -> tuple[Layout, Layout]:
    return (Layout("binary version", binary[:-2], binary[-2], binary[-1]),
            Layout("python version", python[:-2], python[-2], python[-1]))


CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


@register_dataset("cifar10")
class Cifar10(CifarBase):
    """CIFAR-10: 50,000 + 10,000 colour 32x32 images, 10 classes."""

    description = "CIFAR-10 files, binary or python version, 3x32x32 (folder)"
    title = "CIFAR-10"
    classes = 10
    label_byte = 0
    record_bytes = 1 + PIXELS
    label_key = "labels"
    names_key = "label_names"
    layouts = _layouts((*(f"{name}.bin" for name in CIFAR10_TRAIN), "test_batch.bin",
                        "batches.meta.txt"), (*CIFAR10_TRAIN, "test_batch", "batches.meta"))
    subfolders = ("cifar-10-batches-bin", "cifar-10-batches-py")


@register_dataset("cifar100")
class Cifar100(CifarBase):
    """CIFAR-100: 50,000 + 10,000 colour 32x32 images, 100 fine classes (the labels used)."""

    description = "CIFAR-100 files, binary or python version, 3x32x32, fine labels (folder)"
    title = "CIFAR-100"
    classes = 100
    label_byte = 1  # a record is: coarse label, fine label, pixels
    record_bytes = 2 + PIXELS
    label_key = "fine_labels"
    names_key = "fine_label_names"
    layouts = _layouts(("train.bin", "test.bin", "fine_label_names.txt"),
                       ("train", "test", "meta"))
    subfolders = ("cifar-100-binary", "cifar-100-python")
