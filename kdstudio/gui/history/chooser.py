"""The history's column chooser: a menu of the default columns, the summary metrics, the
run fields and every config key path the runs have (one submenu per config section)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QMenu, QStyle, QWidget

from kdstudio.core.config.tips import TIPS
from kdstudio.core.run_table import ROW_FIELDS, SUMMARY_FIELDS
from kdstudio.gui.history.columns import COLUMNS, DEFAULT_KEYS, Column

COLUMNS_SETTING = "history/columns"
WIDTH_CAPS = {"name": 220, "tags": 160, "notes": 260, "weights": 150}
STATUS_SAMPLES = ("interrupted", "running · student")  # texts a run's status cell can take


def fill_column_menu(menu: QMenu, shown: Sequence[str], config_keys: Sequence[str],
                     toggle: Callable[[str, bool], None], reset: Callable[[], None]) -> None:
    """Fill `menu` with checkable entries; `toggle(key, on)` adds or removes a column."""
    menu.clear()
    menu.setToolTipsVisible(True)
    current = set(shown)

    def add(target: QMenu, key: str, text: str, tip: str) -> None:
        action = target.addAction(text)
        action.setCheckable(True)
        action.setChecked(key in current)
        action.setToolTip(tip)
        action.toggled.connect(lambda on, key=key: toggle(key, on))

    menu.addSection("Table")
    for column in COLUMNS:
        add(menu, column.key, column.header, column.tip)
    metrics = menu.addMenu("Summary metrics")
    for key, tip in SUMMARY_FIELDS.items():
        if key not in DEFAULT_KEYS:
            add(metrics, key, key, tip)
    fields = menu.addMenu("Run fields")
    for key, tip in ROW_FIELDS.items():
        if key not in DEFAULT_KEYS:
            add(fields, key, key, tip)
    sections: dict[str, QMenu] = {}
    config = menu.addMenu("Config keys")
    if not config_keys:
        config.addAction("(no runs yet)").setEnabled(False)
    for key in config_keys:
        head, _, rest = key.partition(".")
        if not rest:
            add(config, key, key, TIPS.get(key, f"Config key {key}"))
            continue
        if head not in sections:
            sections[head] = config.addMenu(head)
            sections[head].setToolTipsVisible(True)
        add(sections[head], key, rest, TIPS.get(key, f"Config key {key}"))
    menu.addSeparator()
    menu.addAction("Default columns", reset).setToolTip(
        "Show the default columns in their default order")


def column_menu(parent: QWidget) -> QMenu:
    menu = QMenu(parent)
    menu.setObjectName("historyColumnMenu")
    return menu


class ColumnChoice:
    """The history view's column choice: set, toggle, save to and restore from QSettings
    (a part of HistoryView: it uses the view's table, model and settings)."""

    table: Any
    model: Any
    settings: Any
    column_menu: QMenu
    _sized: bool
    _apply_filter: Callable[[], None]
    _fitting: bool = False
    _user_sized: set[str]

    def header_width(self, column: Column) -> int:
        """Pixels the header of `column` needs with the sort arrow beside its title."""
        header = self.table.horizontalHeader()
        style = header.style()
        arrow = style.pixelMetric(QStyle.PixelMetric.PM_HeaderMarkSize, None, header)
        margin = style.pixelMetric(QStyle.PixelMetric.PM_HeaderMargin, None, header)
        return header.fontMetrics().horizontalAdvance(column.header) + arrow + 4 * margin + 8

    def _set_width(self, index: int, width: int) -> None:
        self._fitting = True
        try:
            self.table.setColumnWidth(index, width)
        finally:
            self._fitting = False

    def _user_resized(self, index: int, _old: int, _new: int) -> None:
        """A header the user dragged keeps its width from then on."""
        if not self._fitting and index < len(self.model.columns):
            self._user_sized.add(self.model.columns[index].key)

    def _default_widths(self) -> None:
        for i, column in enumerate(self.model.columns):
            self._set_width(i, max(column.width, self.header_width(column)))

    def _fit_columns(self, grow_only: bool = False) -> None:
        """Columns as wide as their header (sort arrow included) and their first rows'
        text, long free text capped; `grow_only` widens cut columns the user did not size."""
        self._sized = True
        cell_metrics = self.table.fontMetrics()
        bold = QFont(self.table.font())
        bold.setBold(True)
        bold_metrics = QFontMetrics(bold)
        sample = self.model.runs[:50]  # measuring every row would cost a second at 1,000
        for index, spec in enumerate(self.model.columns):
            if grow_only and spec.key in self._user_sized:
                continue
            metrics = bold_metrics if spec.key == "student_test_acc" else cell_metrics
            texts = [self.model.display(run, spec.key) for run in sample] or [""]
            if spec.key == "status":
                texts += STATUS_SAMPLES
            cells = max(metrics.horizontalAdvance(text) for text in texts) + 12
            if spec.key == "id":
                cells += 22  # the colour swatch
            cap = WIDTH_CAPS.get(spec.key, 400 if spec.source == "default" else 220)
            width = max(min(cells, cap), self.header_width(spec))
            if not grow_only or width > self.table.columnWidth(index):
                self._set_width(index, width)

    def set_columns(self, keys: list[str]) -> None:
        """Show these columns (default ones, run fields, config key paths) in this order."""
        self.model.set_columns(keys)
        header = self.table.horizontalHeader()
        for visual in range(header.count()):  # the model's order is the order shown
            logical = header.logicalIndex(visual)
            if logical != visual:
                header.moveSection(header.visualIndex(visual), visual)
        self._sized = False
        if self.model.runs:
            self._fit_columns()
        else:
            self._default_widths()
        self._save_columns()
        self._apply_filter()

    def shown_keys(self) -> list[str]:
        """The column keys in the order the header shows them."""
        header = self.table.horizontalHeader()
        keys = self.model.column_keys()
        return [keys[header.logicalIndex(v)] for v in range(header.count())]

    def toggle_column(self, key: str, on: bool) -> None:
        keys = self.shown_keys()
        if on and key not in keys:
            self.set_columns([*keys, key])
        elif not on and key in keys and len(keys) > 1:
            self.set_columns([k for k in keys if k != key])

    def _save_columns(self) -> None:
        if self.settings is not None:
            self.settings.setValue(COLUMNS_SETTING, self.shown_keys())

    def _restore_columns(self) -> None:
        saved = self.settings.value(COLUMNS_SETTING) if self.settings is not None else None
        keys = [saved] if isinstance(saved, str) else list(saved or [])
        keys = [str(k) for k in keys if str(k)] or DEFAULT_KEYS
        self.model.set_columns(keys)
        self._default_widths()

    def _fill_column_menu(self) -> None:
        fill_column_menu(self.column_menu, self.shown_keys(), self.model.config_keys,
                         self.toggle_column, lambda: self.set_columns(DEFAULT_KEYS))

    def _header_menu(self, position: Any) -> None:
        self._fill_column_menu()
        header = self.table.horizontalHeader()
        self.column_menu.exec(header.mapToGlobal(position))

