"""A NumPy .npz file as a dataset: arrays `x`, `y` and optionally `x_test`, `y_test`.

Read with `allow_pickle=False`: an object array is refused, never unpickled. The shapes and
dtypes come from the arrays' headers, so `describe` reads only the labels.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from kdstudio.core.data import (
    DataFileError,
    Dataset,
    DatasetInfo,
    RawData,
    data_file_problem,
    register_dataset,
)
from kdstudio.core.memory import memory_problem
from kdstudio.core.text import printable

ARRAYS = ("x", "y", "x_test", "y_test")
NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float
# the inputs as float32, plus the copies alive while they are split and normalised
INPUT_COPIES = 3


def file_problem(path: str) -> str | None:
    """Why `path` cannot be read as an .npz file, or None."""
    problem = data_file_problem(path, "an .npz file",
                                "set data.path to a file with arrays x and y")
    if problem is None and not zipfile.is_zipfile(Path(path).expanduser()):
        return f"{printable(path)} is not an .npz file (not a zip archive of .npy arrays)"
    return problem


def read_headers(path: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of each array in the file, from the .npy headers (no data read)."""
    problem = file_problem(path)
    if problem:
        raise DataFileError(problem)
    headers: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    try:
        with zipfile.ZipFile(Path(path).expanduser()) as archive:
            for member in archive.namelist():
                if not member.endswith(".npy"):
                    continue
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _fortran, dtype = read(handle)
                headers[member[: -len(".npy")]] = (tuple(shape), dtype)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataFileError(f"{printable(path)} is not a readable .npz file ({error})") from None
    return headers


def check_headers(path: str, headers: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """The arrays the file must have, and their shapes and dtypes; raises DataFileError."""
    name = printable(path)
    for key in ("x", "y"):
        if key not in headers:
            found = ", ".join(sorted(headers)) or "none"
            raise DataFileError(f"{name} has no array '{key}' (it holds: {found}); it needs "
                                "x (inputs) and y (labels), optionally x_test and y_test")
    if ("x_test" in headers) != ("y_test" in headers):
        present, absent = ("x_test", "y_test") if "x_test" in headers else ("y_test", "x_test")
        raise DataFileError(f"{name} has '{present}' but no '{absent}'; give both or neither")
    for key in (k for k in ARRAYS if k in headers):
        shape, dtype = headers[key]
        if dtype.hasobject:
            raise DataFileError(f"{name}, array '{key}': an object array, refused (it would "
                                "have to be unpickled); save plain numeric arrays")
        if dtype.kind not in NUMERIC_KINDS:
            raise DataFileError(f"{name}, array '{key}': dtype {dtype} is not numeric")
        if key.startswith("y") and len(shape) != 1:
            raise DataFileError(f"{name}, array '{key}': labels must be one-dimensional "
                                f"(shape {shape})")
        if key.startswith("x") and len(shape) < 2:
            raise DataFileError(f"{name}, array '{key}': shape {shape}; inputs need a sample "
                                "axis and at least one feature axis")
    for x_key, y_key in (("x", "y"), ("x_test", "y_test")):
        if x_key in headers and headers[x_key][0][0] != headers[y_key][0][0]:
            raise DataFileError(f"{name}: '{x_key}' has {headers[x_key][0][0]} samples, "
                                f"'{y_key}' {headers[y_key][0][0]} labels")
    if "x_test" in headers and headers["x_test"][0][1:] != headers["x"][0][1:]:
        raise DataFileError(f"{name}: 'x_test' samples are shaped {headers['x_test'][0][1:]}, "
                            f"those of 'x' {headers['x'][0][1:]}")
    if headers["x"][0][0] == 0:
        raise DataFileError(f"{name}, array 'x': no samples")


def _memory_problem(path: str, headers: dict[str, tuple[tuple[int, ...], np.dtype]]
                    ) -> str | None:
    need = 0
    for key in (k for k in ("x", "x_test") if k in headers):
        shape, dtype = headers[key]
        count = int(np.prod(shape, dtype=np.int64))
        need += count * (dtype.itemsize + INPUT_COPIES * 4)
    return memory_problem(f"the arrays of {printable(path)}", need)


def _array(archive: Any, path: str, key: str) -> np.ndarray:
    try:
        return archive[key]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataFileError(f"{printable(path)}, array '{key}' cannot be read "
                            f"({error})") from None


def checked_labels(path: str, key: str, y: np.ndarray) -> np.ndarray:
    """`y` as int64; raises DataFileError for labels that are not whole numbers >= 0."""
    name = printable(path)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataFileError(f"{name}, array '{key}': labels must be whole numbers "
                                f"(dtype {y.dtype} with fractional or non-finite values)")
    elif y.dtype.kind == "b":
        raise DataFileError(f"{name}, array '{key}': labels must be integers, not booleans")
    if len(y) and y.min() < 0:
        raise DataFileError(f"{name}, array '{key}': label {y.min():g} is negative "
                            "(labels are classes 0, 1, 2, ...)")
    return y.astype(np.int64)


def checked_inputs(path: str, key: str, x: np.ndarray) -> np.ndarray:
    """`x` as float32; raises DataFileError for NaN or infinite values."""
    inputs = x.astype(np.float32)
    finite = np.isfinite(inputs)
    if not finite.all():
        sample = int(np.argwhere(~finite)[0][0])
        raise DataFileError(f"{printable(path)}, array '{key}': non-finite values (NaN or "
                            f"infinity; the first in sample {sample}, or too large for float32)")
    return inputs


@register_dataset("npz")
class NpzArrays(Dataset):
    """A NumPy .npz file with arrays x and y, and optionally x_test and y_test."""

    defaults: dict[str, Any] = {}
    needs_path = True
    path_kind = "file"
    path_filter = "NumPy arrays (*.npz);;All files (*)"
    description = "NumPy .npz arrays x, y (and x_test, y_test) (file)"

    def check_path(self, path: str) -> str | None:
        return file_problem(path)

    def _headers(self, path: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        headers = read_headers(path)
        check_headers(path, headers)
        problem = _memory_problem(path, headers)
        if problem:
            raise DataFileError(problem)
        return headers

    def describe(self, path: str, params: dict[str, Any]) -> DatasetInfo:
        headers = self._headers(path)
        with np.load(Path(path).expanduser(), allow_pickle=False) as archive:
            top = max(int(checked_labels(path, key, _array(archive, path, key)).max(initial=0))
                      for key in ("y", "y_test") if key in headers)
        return DatasetInfo(headers["x"][0][1:], top + 1, [str(i) for i in range(top + 1)])

    def load(self, path: str, params: dict[str, Any]) -> RawData:
        headers = self._headers(path)
        info = self.describe(path, params)
        with np.load(Path(path).expanduser(), allow_pickle=False) as archive:
            arrays = {key: _array(archive, path, key) for key in ARRAYS if key in headers}
        x = checked_inputs(path, "x", arrays.pop("x"))
        y = checked_labels(path, "y", arrays.pop("y"))
        x_test = y_test = None
        if "x_test" in arrays:
            x_test = checked_inputs(path, "x_test", arrays.pop("x_test"))
            y_test = checked_labels(path, "y_test", arrays.pop("y_test"))
        return RawData(x, y, x_test, y_test, info.class_names)
