"""The table model behind the history view: one row per saved run, sortable by raw values,
filterable by free text and status, with name, tags and notes editable in place."""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont

from kdstudio.core.progress import clock
from kdstudio.core.store import Store
from kdstudio.gui.widgets.colours import run_colour

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ID_ROLE = Qt.ItemDataRole.UserRole + 2
Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    tip: str
    width: int
    numeric: bool = False
    editable: bool = False


COLUMNS = [
    Column("id", "ID", "Run id; the swatch is the run's colour in every chart", 54, True),
    Column("name", "Name", "Run name (double-click to edit)", 112, editable=True),
    Column("status", "Status", "completed, stopped, failed, interrupted or running (with the "
           "phase it is in)", 80),
    Column("created_at", "Started", "When the run started, local time", 110),
    Column("duration_s", "Duration", "Wall time of the whole run", 62, True),
    Column("dataset", "Data", "Dataset", 62),
    Column("models", "Teacher → student", "Teacher and student architectures", 104),
    Column("method", "Method", "Distillation method", 56),
    Column("temperature", "T", "Distillation temperature", 32, True),
    Column("weights", "Weights", "Loss weights: ce, kd, feature", 96),
    Column("student_best_val_acc", "Best val", "Best validation accuracy of the distilled "
           "student (live while the run writes)", 58, True),
    Column("student_last_val_acc", "Last val", "Last validation accuracy of the distilled "
           "student (live while the run writes)", 58, True),
    Column("student_test_acc", "Student", "Test accuracy of the distilled student", 58, True),
    Column("baseline_test_acc", "Alone", "Test accuracy of the same student trained without "
           "a teacher (baseline)", 58, True),
    Column("teacher_test_acc", "Teacher", "Test accuracy of the teacher", 58, True),
    Column("kd_gain", "KD gain", "Student test accuracy minus baseline test accuracy, in "
           "points", 56, True),
    Column("compression", "Compression", "Teacher parameters / student parameters", 78, True),
    Column("tags", "Tags", "Comma-separated tags (double-click to edit)", 90, editable=True),
    Column("notes", "Notes", "Free notes (double-click to edit)", 120, editable=True),
]
KEYS = [c.key for c in COLUMNS]
STATUS_COLOURS = {"running": QColor(25, 100, 200), "failed": QColor(190, 30, 30),
                  "interrupted": QColor(170, 110, 0), "stopped": QColor(120, 120, 120)}


def local_time(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def seconds_since(iso: str | None) -> float | None:
    try:
        return time.time() - dt.datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None


def duration_text(seconds: float | None) -> str:
    return "-" if seconds is None or not math.isfinite(seconds) else clock(seconds)


def parse_tags(text: str) -> list[str]:
    """'a, b,, a' -> ['a', 'b']."""
    return list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))


def _num(value: Any, pattern: str) -> str:
    return pattern.format(value) if isinstance(value, (int, float)) else "-"


class HistoryModel(QAbstractTableModel):
    """Runs as rows; edits of name, tags and notes are written to the store at once."""

    edit_refused = Signal(str)

    def __init__(self, store: Store, parent: Any = None) -> None:
        super().__init__(parent)
        self.store = store
        self.runs: list[dict[str, Any]] = []
        self._search: list[str] = []
        self._shown: list[list[str] | None] = []  # display texts per row, filled when painted
        self.sort_column = -1
        self.sort_order = Qt.SortOrder.AscendingOrder

    # ------------------------------------------------------------ content

    def set_runs(self, runs: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.runs = runs
        self._search = [self._search_text(run) for run in runs]
        self._apply_sort()
        self._shown = [None] * len(self.runs)
        self.endResetModel()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort rows by a column's raw values (in Python: a thousand rows take a
        millisecond, where a proxy calling data() for every comparison takes a tenth of a
        second); selections follow their rows."""
        self.sort_column, self.sort_order = column, order
        self.layoutAboutToBeChanged.emit()
        before = self.persistentIndexList()
        ids = [self.runs[index.row()]["id"] for index in before]
        self._apply_sort()
        self._shown = [None] * len(self.runs)
        rows = {run["id"]: row for row, run in enumerate(self.runs)}
        self.changePersistentIndexList(
            before, [self.index(rows[run_id], index.column())
                     for index, run_id in zip(before, ids, strict=True)])
        self.layoutChanged.emit()

    def _apply_sort(self) -> None:
        if not 0 <= self.sort_column < len(COLUMNS) or not self.runs:
            return
        column = COLUMNS[self.sort_column]
        pairs = sorted(zip(self.runs, self._search, strict=True),
                       key=lambda pair: self.sort_key(pair[0], column),
                       reverse=self.sort_order == Qt.SortOrder.DescendingOrder)
        self.runs = [run for run, _ in pairs]
        self._search = [text for _, text in pairs]

    def row_of(self, run_id: int) -> int:
        for row, run in enumerate(self.runs):
            if run["id"] == run_id:
                return row
        return -1

    def update_live(self, run_id: int, progress: dict[str, Any]) -> None:
        """Refresh a running row with the phase and val/acc the run has written so far."""
        row = self.row_of(run_id)
        if row < 0:
            return
        run = self.runs[row]
        run["live_phase"] = progress.get("phase")
        if progress.get("phase") == "student":
            run["student_best_val_acc"] = progress.get("best_val_acc")
            run["student_last_val_acc"] = progress.get("last_val_acc")
        self._shown[row] = None
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    @staticmethod
    def _search_text(run: dict[str, Any]) -> str:
        parts = [str(run["id"]), run.get("name") or "", run.get("status") or "",
                 run.get("dataset") or "", run.get("teacher_arch") or "",
                 run.get("student_arch") or "", run.get("method") or "",
                 " ".join(run.get("tags") or []), run.get("notes") or ""]
        return " ".join(parts).lower()

    def matches(self, row: int, words: list[str], status: str) -> bool:
        run = self.runs[row]
        if status and run["status"] != status:
            return False
        text = self._search[row]
        return all(word in text for word in words)

    # ------------------------------------------------------------ Qt model interface

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.runs)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section].header
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section].tip
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.isValid() and COLUMNS[index.column()].editable:
            base |= Qt.ItemFlag.ItemIsEditable
        return base

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        run = self.runs[index.row()]
        column = COLUMNS[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            shown = self._shown[index.row()]
            if shown is None:
                shown = self._shown[index.row()] = [self.display(run, c.key) for c in COLUMNS]
            return shown[index.column()]
        if role == Qt.ItemDataRole.EditRole:
            if column.key == "tags":
                return ", ".join(run.get("tags") or [])
            return run.get(column.key) or ""
        if role == SORT_ROLE:
            return self.sort_key(run, column)
        if role == ID_ROLE:
            return run["id"]
        if role == Qt.ItemDataRole.TextAlignmentRole and column.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.DecorationRole and column.key == "id":
            return QColor(*run_colour(run["id"]))
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._foreground(run, column.key)
        if role == Qt.ItemDataRole.FontRole and column.key == "student_test_acc":
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(run, column.key)
        return None

    def setData(self, index: Index, value: Any,  # noqa: N802
                role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        run = self.runs[index.row()]
        key = COLUMNS[index.column()].key
        text = str(value)
        if key == "name":
            text = text.strip()
            if not text:
                self.edit_refused.emit("A run needs a name; the old name is kept")
                return False
            new: Any = text
        elif key == "tags":
            new = parse_tags(text)
        elif key == "notes":
            new = text
        else:
            return False
        self.store.update_run(run["id"], **{key: new})
        run[key] = new
        self._search[index.row()] = self._search_text(run)
        self._shown[index.row()] = None
        self.dataChanged.emit(index, index)
        return True

    # ------------------------------------------------------------ cell text

    @staticmethod
    def display(run: dict[str, Any], key: str) -> str:
        value = run.get(key)
        if key == "status":
            phase = run.get("live_phase")
            return f"running · {phase}" if value == "running" and phase else value
        if key == "created_at":
            return local_time(value)
        if key == "duration_s":
            if run["status"] == "running":
                return duration_text(seconds_since(run.get("created_at")))
            return duration_text(value)
        if key == "models":
            return f"{run.get('teacher_arch') or '-'} → {run.get('student_arch') or '-'}"
        if key == "temperature":
            return _num(value, "{:g}")
        if key == "weights":
            parts = [f"{label} {run[field]:g}" for label, field in
                     (("ce", "ce_weight"), ("kd", "kd_weight"), ("feat", "feature_weight"))
                     if isinstance(run.get(field), (int, float)) and run[field] != 0]
            return " · ".join(parts) or "-"
        if key.endswith("_acc"):
            return _num(value, "{:.2%}")
        if key == "kd_gain":
            return _num(None if value is None else value * 100, "{:+.2f}")
        if key == "compression":
            return _num(value, "{:.1f}×")
        if key == "tags":
            return ", ".join(value or [])
        if key == "notes":
            return (value or "").replace("\n", " ")
        return "-" if value is None else str(value)

    @staticmethod
    def sort_key(run: dict[str, Any], column: Column) -> Any:
        if column.key == "duration_s" and run["status"] == "running":
            return seconds_since(run.get("created_at")) or 0.0
        if column.numeric:
            value = run.get(column.key)
            return float(value) if isinstance(value, (int, float)) else -math.inf
        return HistoryModel.display(run, column.key).lower()

    @staticmethod
    def _foreground(run: dict[str, Any], key: str) -> QColor | None:
        if key == "status":
            return STATUS_COLOURS.get(run["status"])
        if key == "kd_gain" and isinstance(run.get("kd_gain"), (int, float)):
            if run["kd_gain"] > 0:
                return QColor(20, 130, 50)
            if run["kd_gain"] < 0:
                return QColor(190, 30, 30)
        return None

    @staticmethod
    def _tooltip(run: dict[str, Any], key: str) -> str | None:
        if key == "status" and run.get("error"):
            return run["error"]
        if key == "notes" and run.get("notes"):
            return run["notes"]
        if key == "compression" and run.get("teacher_params"):
            return (f"teacher {run['teacher_params']:,} parameters, student "
                    f"{run.get('student_params') or 0:,}")
        if key == "created_at":
            return run.get("created_at")
        return None


class HistoryFilter(QSortFilterProxyModel):
    """Free-text words (all must appear) and an exact status; sorting is the source's."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.words: list[str] = []
        self.status = ""

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """The source model sorts itself; the proxy keeps its order and only filters."""
        self.sourceModel().sort(column, order)

    def set_filter(self, text: str, status: str) -> None:
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateFilter is deprecated
            self.beginFilterChange()
            self.words, self.status = text.lower().split(), status
            self.endFilterChange()
        else:
            self.words, self.status = text.lower().split(), status
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:  # noqa: N802
        model = self.sourceModel()
        return model.matches(source_row, self.words, self.status)
