"""The history grouped by one key: a row per value with n and, for every shown column,
mean ± std (numbers) or the value the group's runs share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from kdstudio.core.run_query import MISSING
from kdstudio.core.run_table import ROW_FIELDS, RUN_FIELDS, SUMMARY_FIELDS, Group, group_rows
from kdstudio.gui.history.columns import Column, config_text, counted, stat_text
from kdstudio.gui.history.model import SORT_ROLE, HistoryModel

Index = QModelIndex | QPersistentModelIndex
RUN_IDS_ROLE = Qt.ItemDataRole.UserRole + 3
MAX_IDS_SHOWN = 6
MAX_TIP_VALUES = 20


class GroupModel(QAbstractTableModel):
    """Groups of the runs a HistoryModel shows (after its filter)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.key = ""
        self.groups: list[Group] = []
        self.run_ids: list[list[int]] = []
        self.columns: list[Column] = []
        self.texts: list[list[str]] = []
        self.tips: list[list[str | None]] = []
        self.sort_values: list[list[Any]] = []

    def build(self, model: HistoryModel, rows: list[int], key: str) -> None:
        """Group the model's `rows` (source rows) by `key`."""
        self.beginResetModel()
        self.key = key
        self.columns = [c for c in model.columns if c.key != key]
        numeric = [c.key for c in self.columns if c.numeric and c.key != "id"
                   and (c.key in RUN_FIELDS or c.source == "config")]
        self.groups = group_rows(model.values_of(key, rows),
                                 {name: model.values_of(name, rows) for name in numeric})
        self.run_ids = [[model.runs[rows[i]]["id"] for i in g.rows] for g in self.groups]
        column_raws = {c.key: model.raws_of(c.key, rows) for c in self.columns
                       if c.key not in numeric and c.key != "id"}
        self.texts, self.tips, self.sort_values = [], [], []
        for group, ids in zip(self.groups, self.run_ids, strict=True):
            label = "(missing)" if group.value is MISSING else config_text(group.value)
            cells, tips, sorts = [label, str(len(ids))], [None, None], [
                group.value if group.value is not MISSING else None, len(ids)]
            for column in self.columns:
                if column.key in numeric:
                    mean, spread, count = group.stats[column.key]
                    cells.append(stat_text(column.key, mean, spread, count))
                    tips.append(f"mean ± std of {counted(count, 'run')}" if count else None)
                    sorts.append(mean)
                elif column.key == "id":
                    shown = ", ".join(f"#{i}" for i in ids[:MAX_IDS_SHOWN])
                    cells.append(shown + (" …" if len(ids) > MAX_IDS_SHOWN else ""))
                    tips.append(", ".join(f"#{i}" for i in ids))
                    sorts.append(min(ids))
                else:
                    raws = column_raws[column.key]
                    distinct: dict[Any, int] = {}  # raw value -> first row with it
                    for i in group.rows:
                        distinct.setdefault(raws[i], rows[i])
                    texts = [model.display(model.runs[row], column.key)
                             for row in list(distinct.values())[:MAX_TIP_VALUES]]
                    cells.append(texts[0] if len(distinct) == 1
                                 else f"{len(distinct)} values")
                    tips.append(None if len(distinct) == 1 else "\n".join(texts))
                    sorts.append(cells[-1].lower())
            self.texts.append(cells)
            self.tips.append(tips)
            self.sort_values.append(sorts)
        self.endResetModel()

    def header_keys(self) -> list[str]:
        return [self.key, "n", *(c.key for c in self.columns)]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.groups)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() or not self.key else len(self.columns) + 2

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < self.columnCount():
            return None
        if section == 0:
            header, tip = self.key, f"The value of {self.key} the group's runs share"
        elif section == 1:
            header, tip = "n", "Number of runs in the group"
        else:
            column = self.columns[section - 2]
            header = column.header
            tip = column.tip + ("\nGroups: mean ± std (population) over the group's runs"
                                if column.numeric else "\nGroups: the value the runs share")
        if role == Qt.ItemDataRole.DisplayRole:
            return header
        if role == Qt.ItemDataRole.ToolTipRole:
            return tip
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, column = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self.texts[row][column]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tips[row][column]
        if role == SORT_ROLE:
            value = self.sort_values[row][column]
            return value if isinstance(value, (int, float, str)) else float("-inf")
        if role == RUN_IDS_ROLE:
            return self.run_ids[row]
        if role == Qt.ItemDataRole.TextAlignmentRole and column >= 1 and (
                column == 1 or self.columns[column - 2].numeric):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class GroupedRuns:
    """The history view's grouping: the Group by choices and the grouped table (a part of
    HistoryView: it uses the view's model, proxy and tables)."""

    model: Any
    proxy: Any
    group_by: Any
    group_model: GroupModel
    group_table: Any
    tables: Any
    table: Any
    _update_count: Callable[[], None]
    _update_buttons: Callable[[], None]

    def _fill_group_keys(self) -> None:
        current = self.group_by.currentData()
        self.group_by.blockSignals(True)
        self.group_by.clear()
        self.group_by.addItem("none", "")
        for key in [*ROW_FIELDS, *SUMMARY_FIELDS, *self.model.config_keys]:
            if key not in ("id", "created_at"):
                self.group_by.addItem(key, key)
        index = self.group_by.findData(current)
        self.group_by.setCurrentIndex(max(index, 0))
        self.group_by.blockSignals(False)

    def grouping(self) -> str:
        """The key the runs are grouped by ("" when they are not)."""
        return self.group_by.currentData() or ""

    def group_runs_by(self, key: str) -> None:
        """Group by `key` ("": the plain table)."""
        index = self.group_by.findData(key)
        if index < 0:
            raise ValueError(f"cannot group by {key!r}: no run has it")
        self.group_by.setCurrentIndex(index)

    def _group_changed(self) -> None:
        self.tables.setCurrentWidget(self.group_table if self.grouping() else self.table)
        self._regroup()
        self._update_count()
        self._update_buttons()

    def _regroup(self) -> None:
        key = self.grouping()
        if not key:
            return
        rows = self.proxy.source_rows()
        self.group_model.build(self.model, rows, key)
        self.group_table.resizeColumnsToContents()

