"""The data section's check and preview, read off the GUI thread.

`check_data` (a plain task function) runs validation's data check, which may read the files
(CIFAR's batches, a CSV table), then `preview_dataset`. `DataChecker` runs it with the task
helper for the form's current data, debounced while the user types, replacing a stale check;
the form hands its result to `validate`, so the GUI thread never reads the files itself.
`DataPreview` shows it: the summary, the classes with counts per split, sample images or the
first rows, or the error in red.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kdstudio.core.config import RunConfig
from kdstudio.core.config.validation import data_problems
from kdstudio.core.data import DATASETS
from kdstudio.core.data.preview import DatasetPreview, preview_dataset
from kdstudio.gui.tasks import Task, TaskState

DEBOUNCE_MS = 300
PENDING = "data.path: checking the data files…"
THUMB = 40  # thumbnail side, pixels
THUMB_COLUMNS = 6
TABLE_LINES = 6  # rows a table shows before it scrolls
STAMP_ENTRIES = 200


@dataclass
class DataCheck:
    """What `check_data` found for one data key: validation's problems and the dataset's
    description (what `validate` takes as `data`), and the preview when there is one."""

    key: str
    problems: list[str]
    info: Any
    preview: DatasetPreview | None = None


def reads_files(config: RunConfig) -> bool:
    """Whether the data check of this config reads files (the form runs it off-thread)."""
    data = config.data
    names = [data.dataset] + ([data.transfer_dataset] if data.transfer == "dataset" else [])
    return any(name in DATASETS and DATASETS.get(name).needs_path for name in names)


def path_stamp(path: str) -> list[Any]:
    """Sizes and times of `path` and of its first entries, so that a file or folder changed
    on disk is checked again (a few stats: an image folder's class folders, CIFAR's files)."""
    stamp: list[Any] = []
    try:
        target = Path(path).expanduser()
        info = target.stat()
        stamp.append((info.st_size, info.st_mtime_ns))
        if target.is_dir():
            with os.scandir(target) as entries:
                for entry in itertools.islice(entries, STAMP_ENTRIES):
                    info = entry.stat()
                    stamp.append((entry.name, info.st_size, info.st_mtime_ns))
    except (OSError, ValueError, RuntimeError):
        pass  # the check names the problem
    return sorted(stamp, key=str)


def data_key(config: RunConfig) -> str:
    """The values the data check and the preview depend on, and the files' stamps."""
    d = config.data
    stamps = [path_stamp(p) if p else [] for p in (d.path, d.transfer_path)]
    return json.dumps([d.dataset, d.path, d.params, d.val_fraction, d.test_fraction, config.seed,
                       d.transfer, d.transfer_dataset, d.transfer_path, d.transfer_params,
                       stamps], sort_keys=True, default=str)


def check_data(key: str, config: RunConfig, state: TaskState) -> DataCheck:
    """The task: validation's data check, then (when it passes) the preview."""
    problems, info = data_problems(config)
    d = config.data
    if problems or state.cancelled or not DATASETS.get(d.dataset).needs_path:
        return DataCheck(key, problems, info)
    try:
        preview = preview_dataset(d.dataset, d.path, d.params, d.val_fraction, d.test_fraction,
                                  config.seed)
    except (ValueError, OSError) as error:  # the dataset's message names the file
        return DataCheck(key, [f"data.path: {error}"], info)
    empty = preview.empty_splits()
    if empty:
        sizes = ", ".join(f"{split} {total}" for split, total in preview.totals().items())
        where = "data.val_fraction" if empty == ["val"] else (
            "data.test_fraction" if empty == ["test"] and not preview.test_is_official
            else "data.path")
        problems = [f"{where}: the {' and '.join(empty)} split is empty ({sizes}); use more "
                    "data or change data.val_fraction / data.test_fraction"]
    return DataCheck(key, problems, info, preview)


class DataChecker(QObject):
    """Runs `check_data` for the form's data, one check at a time; `checked` gives it."""

    checked = Signal(object)  # DataCheck
    waiting = Signal()  # a new check was asked for

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.result: DataCheck | None = None
        self.generation = 0  # counts the results, so the form knows a new one came
        self._wanted: tuple[str, RunConfig] | None = None
        self._task: Task | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._launch)

    @property
    def pending(self) -> bool:
        return self._wanted is not None

    def request(self, config: RunConfig) -> DataCheck | None:
        """The check of this config's data if it is done, else None (it is scheduled)."""
        key = data_key(config)
        if self.result is not None and self.result.key == key:
            return self.result
        if self._wanted is None or self._wanted[0] != key:
            self._drop_task()
            self._wanted = (key, config.copy())
            self._timer.start()
            self.waiting.emit()
        return None

    def cancel(self) -> None:
        """Forget the scheduled or running check."""
        self._timer.stop()
        self._drop_task()
        self._wanted = None

    def _drop_task(self) -> None:
        if self._task is not None:
            self._task.cancel()  # its result is dropped; the thread ends on its own
            self._task = None

    def _launch(self) -> None:
        if self._wanted is None:
            return
        key, config = self._wanted
        task = Task(check_data, key, config, name="kdstudio-data-check")
        task.result.connect(self._done)
        task.error.connect(lambda error, key=key: self._done(DataCheck(
            key, [f"data.path: could not read the data ({type(error).__name__}: {error})"],
            None)))
        self._task = task
        task.start()

    def _done(self, check: DataCheck) -> None:
        if self._wanted is None or check.key != self._wanted[0]:
            return  # a check the form no longer wants
        self.result, self._wanted, self._task = check, None, None
        self.generation += 1
        self.checked.emit(check)


def _pixmap(image: np.ndarray) -> QPixmap:
    """A uint8 (H, W) or (H, W, 3) array as a THUMB-sized pixmap (pixels kept sharp)."""
    pixels = np.ascontiguousarray(image)
    height, width = pixels.shape[:2]
    if pixels.ndim == 2:
        frame = QImage(pixels.data, width, height, width, QImage.Format.Format_Grayscale8)
    else:
        frame = QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    mode = (Qt.TransformationMode.FastTransformation if max(height, width) < THUMB
            else Qt.TransformationMode.SmoothTransformation)
    return QPixmap.fromImage(frame.copy()).scaled(
        THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio, mode)


def _table(name: str) -> QTableWidget:
    table = QTableWidget()
    table.setObjectName(name)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
    table.setWordWrap(False)
    return table


def _fill(table: QTableWidget, columns: list[str], rows: list[list[str]],
          numbers_from: int) -> None:
    """Rows of text; columns from `numbers_from` on are right-aligned."""
    table.clear()
    table.setColumnCount(len(columns))
    table.setRowCount(len(rows))
    table.setHorizontalHeaderLabels(columns)
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            if c >= numbers_from:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            table.setItem(r, c, item)
    lines = min(len(rows), TABLE_LINES)
    header = table.horizontalHeader().sizeHint().height()
    scrolls = table.horizontalScrollBarPolicy() != Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    scroll = table.horizontalScrollBar().sizeHint().height() if scrolls else 0
    table.setFixedHeight(header + lines * table.verticalHeader().defaultSectionSize()
                         + scroll + 2 * table.frameWidth())


class DataPreview(QFrame):
    """The preview under the data path: busy while reading, then the data or its error."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("dataPreview")
        column = QVBoxLayout(self)
        column.setContentsMargins(6, 4, 6, 6)
        busy_row = QHBoxLayout()
        self.busy = QProgressBar()
        self.busy.setObjectName("dataPreviewBusy")
        self.busy.setRange(0, 0)  # indeterminate
        self.busy.setTextVisible(False)
        self.busy.setFixedSize(60, 10)
        self.busy_label = QLabel("Reading the data…")
        busy_row.addWidget(self.busy)
        busy_row.addWidget(self.busy_label, 1)
        self.busy_line = QWidget()
        self.busy_line.setLayout(busy_row)
        busy_row.setContentsMargins(0, 0, 0, 0)
        self.summary = QLabel()
        self.summary.setObjectName("dataPreviewSummary")
        self.summary.setWordWrap(True)
        self.error = QLabel()
        self.error.setObjectName("dataPreviewError")
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.counts = _table("dataPreviewCounts")
        self.counts.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.counts.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.samples = QWidget()
        self.samples.setObjectName("dataPreviewSamples")
        self._grid = QGridLayout(self.samples)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(4)
        self.rows = _table("dataPreviewRows")
        self.rows.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        for widget in (self.busy_line, self.summary, self.error, self.counts, self.samples,
                       self.rows):
            column.addWidget(widget)
        self.thumbnails: list[QLabel] = []
        self._show_only(self.busy_line)

    def _show_only(self, *shown: QWidget) -> None:
        for widget in (self.busy_line, self.summary, self.error, self.counts, self.samples,
                       self.rows):
            widget.setVisible(widget in shown)

    def show_busy(self) -> None:
        """Reading: the spinner, and the last preview stays until the new one comes."""
        self.busy_line.show()

    def show_check(self, check: DataCheck) -> None:
        """The check's preview, or its first problem in red."""
        if check.preview is None or check.problems:
            shown = [p.split(":", 1)[1].strip() if ":" in p else p for p in check.problems[:3]]
            self.error.setText("\n".join(shown) or "no preview for this dataset")
            self._show_only(self.error, *([self.summary] if check.preview else []))
            if check.preview is not None:
                self.summary.setText(check.preview.summary())
            return
        preview = check.preview
        self.summary.setText(preview.summary())
        names = preview.class_names
        _fill(self.counts, ["Class", "Train", "Val", "Test"],
              [[name, *(f"{preview.counts[s][i]:,}" for s in ("train", "val", "test"))]
               for i, name in enumerate(names)], numbers_from=1)
        self._set_thumbnails(preview)
        if preview.rows:
            _fill(self.rows, preview.columns, preview.rows, numbers_from=len(preview.columns))
        self._show_only(self.summary, self.counts,
                        *([self.samples] if preview.images else []),
                        *([self.rows] if preview.rows else []))

    def _set_thumbnails(self, preview: DatasetPreview) -> None:
        for label in self.thumbnails:
            self._grid.removeWidget(label)
            label.deleteLater()
        self.thumbnails = []
        for index, (image, label_index) in enumerate(preview.images):
            name = (preview.class_names[label_index] if label_index < len(preview.class_names)
                    else str(label_index))
            cell = QLabel()
            cell.setPixmap(_pixmap(image))
            cell.setFixedSize(THUMB + 2, THUMB + 2)
            cell.setAlignment(Qt.AlignmentFlag.AlignCenter)
            cell.setToolTip(f"class {label_index}: {name}")
            caption = QLabel()
            caption.setObjectName("dataPreviewCaption")
            caption.setFixedWidth(THUMB + 2)
            caption.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            caption.setText(caption.fontMetrics().elidedText(
                name, Qt.TextElideMode.ElideRight, THUMB + 2))
            caption.setToolTip(cell.toolTip())
            row, col = divmod(index, THUMB_COLUMNS)
            self._grid.addWidget(cell, 2 * row, col)
            self._grid.addWidget(caption, 2 * row + 1, col)
            self.thumbnails += [cell, caption]
        self._grid.setColumnStretch(THUMB_COLUMNS, 1)
