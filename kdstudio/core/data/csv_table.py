"""A CSV table as a dataset: one label column, every other column a numeric feature."""

from __future__ import annotations

import csv
import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
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

# the table as float32, plus the copies alive while it is split and normalised
TABLE_COPIES = 3


@dataclass
class TableLayout:
    """What one pass over the file finds: the columns, and each data row's label and row
    number (as a spreadsheet shows it)."""

    columns: list[str]
    label_index: int
    labels: list[str]
    row_numbers: list[int]

    @property
    def feature_names(self) -> list[str]:
        return [name for i, name in enumerate(self.columns) if i != self.label_index]


def file_problem(path: str) -> str | None:
    """Why `path` cannot be read as a CSV file, or None."""
    return data_file_problem(path, "a CSV file",
                             "set data.path to a .csv file with a header row")


def _rows(path: str) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet row number, cells) for every non-blank line; the header is row 1."""
    try:
        with open(Path(path).expanduser(), newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            for cells in reader:
                if cells and any(cell.strip() for cell in cells):
                    yield reader.line_num, cells
    except UnicodeDecodeError as error:
        raise DataFileError(f"{printable(path)} is not UTF-8 text ({error.reason})") from None
    except csv.Error as error:
        raise DataFileError(f"{printable(path)} is not a readable CSV file ({error})") from None
    except OSError as error:
        raise DataFileError(f"{printable(path)} cannot be read ({error.strerror})") from None


def first_rows(path: str, count: int) -> tuple[list[str], list[list[str]]]:
    """The header and the first `count` data rows as the file holds them (text)."""
    rows = _rows(path)
    try:
        header = next(rows, None)
        columns = [cell.strip() for cell in header[1]] if header else []
        return columns, [[cell.strip() for cell in cells] for _row, cells in
                         itertools.islice(rows, count)]
    finally:
        rows.close()


def scan_table(path: str, label_column: str) -> TableLayout:
    """One pass over the file: the header, the label column and each row's label; raises
    DataFileError naming the file (and row) for a missing column, a ragged row, no rows."""
    problem = file_problem(path)
    if problem:
        raise DataFileError(problem)
    name = printable(path)
    rows = _rows(path)
    header = next(rows, None)
    if header is None:
        raise DataFileError(f"{name} is empty (it needs a header row and data rows)")
    columns = [cell.strip() for cell in header[1]]
    if label_column not in columns:
        raise DataFileError(f"{name} has no column {printable(label_column)!r} for the labels "
                            f"(its columns: {', '.join(printable(c) for c in columns)}); set "
                            "data.params.label_column")
    if len(columns) < 2:
        raise DataFileError(f"{name} has only the label column; it needs feature columns too")
    label_index = columns.index(label_column)
    labels: list[str] = []
    row_numbers: list[int] = []
    for row, cells in rows:
        if len(cells) != len(columns):
            raise DataFileError(f"{name}, row {row}: {len(cells)} cells, the header has "
                                f"{len(columns)}")
        label = cells[label_index].strip()
        if not label:
            raise DataFileError(f"{name}, row {row}, column {printable(label_column)!r}: "
                                "empty label")
        labels.append(label)
        row_numbers.append(row)
    if not labels:
        raise DataFileError(f"{name} has a header but no data rows")
    return TableLayout(columns, label_index, labels, row_numbers)


def _as_integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def label_classes(layout: TableLayout, path: str) -> tuple[np.ndarray, list[str]]:
    """Labels as int64 and the class names: integers are classes 0..max, anything else
    names classes sorted by name."""
    integers = [_as_integer(label) for label in layout.labels]
    if all(value is not None for value in integers):
        negative = next((i for i, v in enumerate(integers) if v is not None and v < 0), None)
        if negative is not None:
            column = printable(layout.columns[layout.label_index])
            raise DataFileError(f"{printable(path)}, row {layout.row_numbers[negative]}, "
                                f"column {column!r}: label {integers[negative]} is negative "
                                "(integer labels are classes 0, 1, 2, ...)")
        labels = np.asarray(integers, dtype=np.int64)
        return labels, [str(i) for i in range(int(labels.max()) + 1)]
    names = sorted(set(layout.labels))
    index = {label: i for i, label in enumerate(names)}
    return np.asarray([index[label] for label in layout.labels], dtype=np.int64), names


def _table_memory_problem(path: str, rows: int, features: int) -> str | None:
    need = TABLE_COPIES * 4 * rows * features
    return memory_problem(f"{printable(path)} ({rows:,} rows x {features:,} features)", need)


def read_features(path: str, layout: TableLayout) -> np.ndarray:
    """The feature columns as float32 (rows, features); a cell that is not a finite number
    raises DataFileError naming the file, row and column."""
    features = np.empty((len(layout.labels), len(layout.feature_names)), dtype=np.float32)
    feature_columns = [i for i in range(len(layout.columns)) if i != layout.label_index]
    rows = _rows(path)
    next(rows)
    for n, (row, cells) in enumerate(rows):
        if n >= len(features) or len(cells) != len(layout.columns):
            raise DataFileError(f"{printable(path)} changed while it was read (row {row})")
        for j, column in enumerate(feature_columns):
            text = cells[column].strip()
            try:
                value = float(text)
            except ValueError:
                value = float("nan")
            if not np.isfinite(value):
                what = "empty cell" if not text else f"{printable(text)!r} is not a finite number"
                raise DataFileError(f"{printable(path)}, row {row}, column "
                                    f"{printable(layout.columns[column])!r}: {what}")
            features[n, j] = value
    return features


@register_dataset("csv")
class CsvTable(Dataset):
    """A CSV file with a header row: a label column (names or integers) and numeric features."""

    defaults = {"label_column": "label"}
    needs_path = True
    path_kind = "file"
    path_filter = "CSV tables (*.csv);;All files (*)"
    description = "a CSV table: a label column and numeric feature columns (file)"

    def check_path(self, path: str) -> str | None:
        return file_problem(path)

    def _label_column(self, params: dict[str, Any]) -> str:
        label_column = params["label_column"]
        if not isinstance(label_column, str) or not label_column.strip():
            raise ValueError(f"label_column must be a column name (got {label_column!r})")
        return label_column.strip()

    def describe(self, path: str, params: dict[str, Any]) -> DatasetInfo:
        label_column = self._label_column(params)
        problem = file_problem(path)
        if problem:
            raise DataFileError(problem)
        stat = Path(path).expanduser().stat()
        rows, features, names = _table_summary(path, stat.st_mtime_ns, stat.st_size,
                                               label_column)
        problem = _table_memory_problem(path, rows, features)
        if problem:
            raise DataFileError(problem)
        return DatasetInfo((features,), len(names), list(names))

    def load(self, path: str, params: dict[str, Any]) -> RawData:
        layout = scan_table(path, self._label_column(params))
        problem = _table_memory_problem(path, len(layout.labels), len(layout.feature_names))
        if problem:
            raise DataFileError(problem)
        labels, names = label_classes(layout, path)
        return RawData(read_features(path, layout), labels, None, None, names)


@functools.lru_cache(maxsize=16)
def _table_summary(path: str, _mtime_ns: int, _size: int, label_column: str
                   ) -> tuple[int, int, tuple[str, ...]]:
    """Rows, features and class names of a file as it is now (validation asks often)."""
    layout = scan_table(path, label_column)
    _labels, names = label_classes(layout, path)
    return len(layout.labels), len(layout.feature_names), tuple(names)
