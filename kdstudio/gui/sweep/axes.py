"""One axis of the Sweep dialog: a key of the form and the values it takes.

A number key is typed as a list ("2, 4, 8") or a range (low, high, count, linear or log);
a choice or switch key ticks its values. The row shows its own problem inline, naming the key.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QWidget,
)

from kdstudio.gui.sweep.values import AxisKey, parse_list, parse_range, plain, range_values

ERROR_STYLE = "color: #c62828;"
TICK_COLUMNS = 3


class AxisRow(QWidget):
    """The values of one key; `values(grid)` reads them, `problem` says what is wrong."""

    changed = Signal()
    removed = Signal(object)  # self

    def __init__(self, axis: AxisKey, current: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.axis = axis
        self.setObjectName(f"sweepAxis_{axis.key}")
        name = QLabel(f"<b>{axis.label}</b>")
        name.setToolTip(f"{axis.key}\n\n{axis.field.tip}".strip())
        remove = QToolButton()
        remove.setText("✕")
        remove.setObjectName("sweepAxisRemove")
        remove.setToolTip(f"Stop sweeping {axis.key}")
        remove.clicked.connect(lambda: self.removed.emit(self))
        self.error = QLabel()
        self.error.setObjectName("sweepAxisError")
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.hide()
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 2, 0, 2)
        grid.addWidget(name, 0, 0)
        grid.addWidget(remove, 0, 2)
        self.ticks: list[QCheckBox] = []
        self.mode = QComboBox()
        editors = QHBoxLayout()
        if axis.numeric:
            self._build_numbers(editors, current)
            grid.addLayout(editors, 1, 0, 1, 3)
        else:
            ticks = QGridLayout()
            for i, (value, label) in enumerate(axis.choices()):
                box = QCheckBox(label)
                box.setProperty("sweepValue", value)
                box.setChecked(value == current)
                box.toggled.connect(self.changed)
                self.ticks.append(box)
                ticks.addWidget(box, i // TICK_COLUMNS, i % TICK_COLUMNS)
            grid.addLayout(ticks, 1, 0, 1, 3)
        grid.addWidget(self.error, 2, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        self.problem = ""

    def _build_numbers(self, editors: QHBoxLayout, current: Any) -> None:
        self.mode.setObjectName("sweepAxisMode")
        self.mode.addItem("values", "values")
        self.mode.addItem("range", "range")
        self.mode.setToolTip("Values: a comma-separated list. Range: low to high in count "
                             "steps (grid), or sampled from low..high (random, optuna)")
        self.list_edit = QLineEdit(plain(current) if current is not None else "")
        self.list_edit.setObjectName("sweepAxisValues")
        self.list_edit.setPlaceholderText("comma-separated, e.g. 2, 4, 8")
        self.low, self.high = QLineEdit(), QLineEdit()
        self.low.setObjectName("sweepAxisLow")
        self.high.setObjectName("sweepAxisHigh")
        self.low.setPlaceholderText("low")
        self.low.setMaximumWidth(90)
        self.high.setMaximumWidth(90)
        self.high.setPlaceholderText("high")
        self.count = QSpinBox()
        self.count.setObjectName("sweepAxisCount")
        self.count.setRange(2, 1000)
        self.count.setValue(3)
        self.count.setPrefix("count ")
        self.count.setToolTip("How many values a grid takes from the range")
        self.log = QCheckBox("log")
        self.log.setObjectName("sweepAxisLog")
        self.log.setToolTip("Log-spaced values (grid) or log-uniform sampling (random, "
                            "optuna); needs low > 0")
        editors.addWidget(self.mode)
        editors.addWidget(self.list_edit, 1)
        spacer = QWidget()  # takes the list's room in range mode
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.range_widgets = (self.low, QLabel(".."), self.high, self.count, self.log, spacer)
        for widget in self.range_widgets:
            editors.addWidget(widget)
        for edit in (self.list_edit, self.low, self.high):
            edit.textChanged.connect(self.changed)
        self.count.valueChanged.connect(self.changed)
        self.log.toggled.connect(self.changed)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self._mode_changed()

    def _mode_changed(self) -> None:
        ranged = self.mode.currentData() == "range"
        self.list_edit.setVisible(not ranged)
        for widget in self.range_widgets:
            widget.setVisible(ranged)
        self.changed.emit()

    @property
    def key(self) -> str:
        return self.axis.key

    def set_values(self, values: Any) -> None:
        """Show what a sweep file gives for this key: a list, or a range table."""
        if self.axis.numeric:
            if isinstance(values, dict):
                self.mode.setCurrentIndex(1)
                self.low.setText(plain(values.get("low", "")))
                self.high.setText(plain(values.get("high", "")))
                self.log.setChecked(bool(values.get("log", False)))
            else:
                self.mode.setCurrentIndex(0)
                self.list_edit.setText(", ".join(plain(v) for v in values))
            return
        for box in self.ticks:
            box.setChecked(box.property("sweepValue") in list(values))

    def values(self, grid: bool) -> list[Any] | dict[str, Any]:
        """The key's values (a range table for random/optuna ranges); ValueError naming the
        key when they are not right."""
        field = self.axis.field
        if not self.axis.numeric:
            chosen = [box.property("sweepValue") for box in self.ticks if box.isChecked()]
            if not chosen:
                raise ValueError(f"{self.key}: tick at least one value")
            return chosen
        if self.mode.currentData() == "values":
            return parse_list(self.list_edit.text(), field)
        low, high = parse_range(self.low.text(), self.high.text(), field)
        if grid:
            return range_values(low, high, self.count.value(), self.log.isChecked(), field)
        if self.log.isChecked() and low <= 0:
            raise ValueError(f"{self.key}: a log range needs low > 0 (got {plain(low)})")
        return {"low": low, "high": high, "log": self.log.isChecked()}

    def show_problem(self, problem: str) -> None:
        self.problem = problem
        self.error.setText(problem)
        self.error.setVisible(bool(problem))
