"""The table model behind the history view: one row per saved run with the columns the
user chose (default ones, summary metrics, config key paths), sortable by raw values,
filtered by words or an expression (core/run_query.py) and a status, with name, tags and
notes editable in place."""

from __future__ import annotations

import math
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

from kdstudio.core.run_query import (
    MISSING,
    Expr,
    QueryError,
    evaluate,
    looks_like_expression,
    names,
    parse,
    unknown_names,
)
from kdstudio.core.run_table import RUN_FIELDS, flatten, is_percent, key_paths, run_value
from kdstudio.core.store import Store
from kdstudio.gui.history.columns import (
    BUILTIN,
    COLUMNS,
    Column,
    builtin_text,
    column_for,
    config_text,
    field_text,
    is_numeric_values,
    seconds_since,
)
from kdstudio.gui.widgets.colours import run_colour

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
ID_ROLE = Qt.ItemDataRole.UserRole + 2
Index = QModelIndex | QPersistentModelIndex
STATUS_COLOURS = {"running": QColor(25, 100, 200), "failed": QColor(190, 30, 30),
                  "interrupted": QColor(170, 110, 0), "stopped": QColor(120, 120, 120)}
__all__ = ["COLUMNS", "ID_ROLE", "SORT_ROLE", "Column", "HistoryFilter", "HistoryModel"]


def parse_tags(text: str) -> list[str]:
    """'a, b,, a' -> ['a', 'b']."""
    return list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))


class HistoryModel(QAbstractTableModel):
    """Runs as rows; edits of name, tags and notes are written to the store at once."""

    edit_refused = Signal(str)

    def __init__(self, store: Store, parent: Any = None) -> None:
        super().__init__(parent)
        self.store = store
        self.runs: list[dict[str, Any]] = []
        self.columns: list[Column] = list(COLUMNS)
        self.flat: dict[int, dict[str, Any]] = {}  # run id -> flattened config
        self.config_keys: list[str] = []
        self.revision = 0  # changes whenever rows or their values change
        self._search: list[str] = []
        self._shown: list[list[str] | None] = []  # display texts per row, filled when painted
        self.sort_column = -1
        self.sort_order = Qt.SortOrder.AscendingOrder

    # ------------------------------------------------------------ content

    def set_runs(self, runs: list[dict[str, Any]]) -> None:
        self.beginResetModel()
        self.runs = runs
        self._load_configs()
        self._search = [self._search_text(run) for run in runs]
        self._apply_sort()
        self._shown = [None] * len(self.runs)
        self.revision += 1
        self.endResetModel()

    def _load_configs(self) -> None:
        """Flattened configs of new runs (a config never changes once written)."""
        new = self.store.run_configs(after_id=max(self.flat, default=0))
        alive = {run["id"] for run in self.runs}
        self.flat = {i: flat for i, flat in self.flat.items() if i in alive}
        self.flat |= {i: flatten(config) for i, config in new.items()}
        if new or len(self.flat) != len(alive):
            self.config_keys = key_paths(self.flat.values())

    def set_columns(self, keys: list[str]) -> None:
        """Show these columns in this order (unknown config keys show '-')."""
        sort_key = (self.columns[self.sort_column].key
                    if 0 <= self.sort_column < len(self.columns) else None)
        self.beginResetModel()
        self.columns = [self._column(key) for key in dict.fromkeys(keys)] or list(COLUMNS)
        keys_now = [c.key for c in self.columns]
        self.sort_column = keys_now.index(sort_key) if sort_key in keys_now else -1
        self._shown = [None] * len(self.runs)
        self.endResetModel()

    def _column(self, key: str) -> Column:
        if key in BUILTIN or key in RUN_FIELDS:
            return column_for(key)
        values = [flat.get(key, MISSING) for flat in self.flat.values()]
        return column_for(key, numeric=is_numeric_values(values))

    def column_keys(self) -> list[str]:
        return [c.key for c in self.columns]

    def known_name(self, name: str) -> bool:
        """Can a filter or a group use this name (a run field or some run's config key)?"""
        return name in RUN_FIELDS or name in set(self.config_keys)

    def value(self, row: int, name: str) -> Any:
        """The run's value of a run field or config key, in table units (or MISSING)."""
        run = self.runs[row]
        return run_value(run, self.flat.get(run["id"], {}), name)

    def values_of(self, name: str, rows: list[int] | None = None) -> list[Any]:
        """`value` of every row (or of `rows`), in one pass (None or MISSING: no value)."""
        runs = self.runs if rows is None else [self.runs[row] for row in rows]
        if name in RUN_FIELDS:
            values = [run.get(name) for run in runs]
            if is_percent(name):
                return [round(v * 100, 9) if isinstance(v, (int, float)) else v
                        for v in values]
            return values
        flat = self.flat
        return [flat.get(run["id"], {}).get(name, MISSING) for run in runs]

    def raws_of(self, key: str, rows: list[int]) -> list[Any]:
        """What each row's cell shows before it is formatted (equal raws: equal texts)."""
        runs = [self.runs[row] for row in rows]
        if key == "models":
            return [(run.get("teacher_arch"), run.get("student_arch")) for run in runs]
        if key == "weights":
            return [(run.get("ce_weight"), run.get("kd_weight"), run.get("feature_weight"))
                    for run in runs]
        if key == "tags":
            return [tuple(run.get("tags") or ()) for run in runs]
        if key == "status":
            return [(run.get("status"), run.get("live_phase")) for run in runs]
        if key in BUILTIN or key in RUN_FIELDS:
            return [run.get(key) for run in runs]
        return [repr(self.flat.get(run["id"], {}).get(key, MISSING)) for run in runs]

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
        if not 0 <= self.sort_column < len(self.columns) or not self.runs:
            return
        column = self.columns[self.sort_column]
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
        self.revision += 1
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.columns) - 1))

    @staticmethod
    def _search_text(run: dict[str, Any]) -> str:
        parts = [str(run["id"]), run.get("name") or "", run.get("status") or "",
                 run.get("dataset") or "", run.get("teacher_arch") or "",
                 run.get("student_arch") or "", run.get("method") or "",
                 " ".join(run.get("tags") or []), run.get("notes") or ""]
        return " ".join(parts).lower()

    def accepted_ids(self, words: list[str], expr: Expr | None, status: str) -> set[int]:
        """Ids of the runs with the status (any when empty) that match the expression, or
        contain every word when there is none: one pass over the rows."""
        out: set[int] = set()
        columns = {name: self.values_of(name) for name in names(expr)} if expr else {}
        for row, run in enumerate(self.runs):
            if status and run["status"] != status:
                continue
            if expr is not None:
                if not evaluate(expr, lambda name, row=row: columns[name][row]):
                    continue
            elif not all(word in self._search[row] for word in words):
                continue
            out.add(run["id"])
        return out

    # ------------------------------------------------------------ Qt model interface

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.runs)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.columns[section].header
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.columns[section].tip
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.isValid() and self.columns[index.column()].editable:
            base |= Qt.ItemFlag.ItemIsEditable
        return base

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        run = self.runs[index.row()]
        column = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            shown = self._shown[index.row()]
            if shown is None:
                shown = self._shown[index.row()] = [self.display(run, c.key)
                                                    for c in self.columns]
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
            tip = self._tooltip(run, column.key)
            shown = self.display(run, column.key)
            # a cell's own tip leads with its full text, so a cut cell is still readable
            return f"{shown}\n{tip}" if tip and shown != tip else tip
        return None

    def setData(self, index: Index, value: Any,  # noqa: N802
                role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid():
            return False
        run = self.runs[index.row()]
        key = self.columns[index.column()].key
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
        self.revision += 1
        self.dataChanged.emit(index, index)
        return True

    # ------------------------------------------------------------ cell text

    def display(self, run: dict[str, Any], key: str) -> str:
        if key in BUILTIN:
            return builtin_text(run, key)
        if key in RUN_FIELDS:
            return field_text(key, run.get(key))
        return config_text(self.flat.get(run["id"], {}).get(key, MISSING))

    def sort_key(self, run: dict[str, Any], column: Column) -> Any:
        if column.key == "duration_s" and run["status"] == "running":
            return seconds_since(run.get("created_at")) or 0.0
        if column.numeric:
            if column.source == "config":
                value = self.flat.get(run["id"], {}).get(column.key)
            else:
                value = run.get(column.key)
            return (float(value) if isinstance(value, (int, float))
                    and not isinstance(value, bool) else -math.inf)
        return self.display(run, column.key).lower()

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
    """Words (all must appear) or an expression, and an exact status; sorting is the
    source's. A filter with a comparison operator is an expression; any other text is
    words."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.words: list[str] = []
        self.expr: Expr | None = None
        self.status = ""
        self.error = ""
        self._accepted: set[int] = set()
        self._revision = -1

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """The source model sorts itself; the proxy keeps its order and only filters."""
        self.sourceModel().sort(column, order)

    def set_filter(self, text: str, status: str) -> str:
        """Filter by `text` and `status`; returns the one-line reason when the text is an
        expression that does not parse or names a key no run has ("" when fine). A bad
        expression filters by status alone."""
        words, expr, error = text.lower().split(), None, ""
        if looks_like_expression(text):
            words = []
            try:
                expr = parse(text)
                unknown = unknown_names(expr, self.sourceModel().known_name)
                if unknown:
                    error = (f"no run has a column or config key '{unknown[0]}' (a text value "
                             f"needs quotes: \"{unknown[0]}\")")
                    expr = None
            except QueryError as problem:
                error = str(problem)
        if hasattr(self, "beginFilterChange"):  # Qt >= 6.9; invalidateFilter is deprecated
            self.beginFilterChange()
            self.words, self.expr, self.status, self.error = words, expr, status, error
            self._revision = -1
            self.endFilterChange()
        else:
            self.words, self.expr, self.status, self.error = words, expr, status, error
            self._revision = -1
            self.invalidateFilter()
        return error

    def _accepted_now(self) -> set[int]:
        model = self.sourceModel()
        if self._revision != model.revision:  # evaluate every row once, not per call
            self._accepted = model.accepted_ids(self.words, self.expr, self.status)
            self._revision = model.revision
        return self._accepted

    def filterAcceptsRow(self, source_row: int, source_parent: Index) -> bool:  # noqa: N802
        return self.sourceModel().runs[source_row]["id"] in self._accepted_now()

    def source_rows(self) -> list[int]:
        """The source rows the filter keeps, in the order shown (the source sorts)."""
        accepted = self._accepted_now()
        return [row for row, run in enumerate(self.sourceModel().runs) if run["id"] in accepted]
