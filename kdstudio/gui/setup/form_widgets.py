"""Form widgets generated from registry defaults, so a new model or dataset needs no GUI code.

A parameter's default decides its widget: bool -> check box, int -> spin box,
float -> decimal spin box, list of numbers -> line edit ("32, 64"), str -> line edit.
"""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

INT_LIMIT = 1_000_000_000
FLOAT_LIMIT = 1e9


def label_for(name: str) -> str:
    """`hidden_sizes` -> `Hidden sizes`."""
    text = name.replace("_", " ")
    return text[:1].upper() + text[1:]


def format_list(values: list[Any]) -> str:
    return ", ".join(str(v) for v in values)


def parse_list(text: str, item_type: type) -> list[Any]:
    """`"32, 64"` -> [32, 64]; raises ValueError with a readable message."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        return [item_type(p) for p in parts]
    except ValueError:
        kind = "whole numbers" if item_type is int else "numbers"
        raise ValueError(f"expected {kind} separated by commas, like 32, 64 (got '{text}')"
                         ) from None


def set_combo_value(combo: QComboBox, value: str) -> None:
    """Select the item whose data is `value`, adding it when missing (validation names it)."""
    index = combo.findData(value)
    if index < 0:
        combo.addItem(value, value)
        index = combo.count() - 1
    combo.setCurrentIndex(index)


def no_wheel(widget: QWidget) -> QWidget:
    """Spin boxes in a scrolling form should not change value when the page scrolls past."""
    from PySide6.QtCore import Qt

    widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    widget.wheelEvent = lambda event: event.ignore()  # type: ignore[method-assign]
    return widget


def make_spin(minimum: int = 0, maximum: int = INT_LIMIT, value: int = 0) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(minimum, maximum)
    spin.setValue(value)
    spin.setGroupSeparatorShown(False)
    no_wheel(spin)
    return spin


def make_double(minimum: float, maximum: float, value: float, decimals: int = 4,
                step: float = 0.1) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(decimals)
    spin.setRange(minimum, maximum)
    spin.setSingleStep(step)
    spin.setValue(value)
    no_wheel(spin)
    return spin


class ParamEditor(QObject):
    """Editable parameters of a registry entry, one generated widget per default value.

    The rows go into an existing form, right after the `anchor` row (usually the combo box
    that picks the model or dataset), so they line up with the other fields.
    `values()` returns the current values and the problems met reading them (a list that
    does not parse); keys the schema does not know are kept as given, so validation can
    name them.
    """

    changed = Signal()

    def __init__(self, section: str, form: QFormLayout, anchor: QWidget) -> None:
        super().__init__(form)
        self.section = section  # key path prefix, e.g. "teacher.params"
        self.form = form
        self.anchor = anchor
        self.defaults: dict[str, Any] = {}
        self.widgets: dict[str, QWidget] = {}
        self.extra: dict[str, Any] = {}
        self._visible = True

    def set_schema(self, defaults: dict[str, Any], help_text: str = "") -> None:
        """Rebuild the widgets for these defaults; values reset to the defaults."""
        for widget in self.widgets.values():
            self.form.removeRow(widget)
        self.defaults = dict(defaults)
        self.widgets = {}
        self.extra = {}
        row, _role = self.form.getWidgetPosition(self.anchor)
        for offset, (name, default) in enumerate(defaults.items(), start=1):
            widget = self._make_widget(default)
            tip = f"{self.section}.{name} (default: {self._show(default)})"
            if help_text:
                tip += f"\n\n{help_text}"
            widget.setToolTip(tip)
            widget.setObjectName(f"{self.section.replace('.', '_')}_{name}")
            self.widgets[name] = widget
            label = QLabel(label_for(name))
            label.setToolTip(tip)
            label.setBuddy(widget)
            self.form.insertRow(row + offset, label, widget)
        self.set_visible(self._visible)

    def set_visible(self, visible: bool) -> None:
        self._visible = visible
        for widget in self.widgets.values():
            self.form.setRowVisible(widget, visible)

    @staticmethod
    def _show(value: Any) -> str:
        return format_list(value) if isinstance(value, (list, tuple)) else repr(value)

    def _make_widget(self, default: Any) -> QWidget:
        if isinstance(default, bool):
            widget: QWidget = QCheckBox()
            widget.setChecked(default)
            widget.toggled.connect(self.changed)
        elif isinstance(default, int):
            widget = make_spin(-INT_LIMIT, INT_LIMIT, default)
            widget.valueChanged.connect(self.changed)
        elif isinstance(default, float):
            widget = make_double(-FLOAT_LIMIT, FLOAT_LIMIT, default)
            widget.valueChanged.connect(self.changed)
        elif isinstance(default, (list, tuple)):
            widget = QLineEdit(format_list(default))
            widget.setPlaceholderText("comma-separated, e.g. 32, 64")
            widget.textChanged.connect(self.changed)
        else:
            widget = QLineEdit("" if default is None else str(default))
            widget.textChanged.connect(self.changed)
        return widget
    def _item_type(self, name: str) -> type:
        default = self.defaults[name]
        return float if any(isinstance(v, float) for v in default) else int

    def set_values(self, values: dict[str, Any]) -> None:
        """Show these values; missing keys take their defaults, unknown keys are kept."""
        self.extra = {k: v for k, v in values.items() if k not in self.widgets}
        for name, widget in self.widgets.items():
            value = values.get(name, self.defaults[name])
            self._set_widget(widget, name, value)
        self.changed.emit()

    def _set_widget(self, widget: QWidget, name: str, value: Any) -> None:
        widget.blockSignals(True)
        try:
            if isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    widget.setValue(value)
            elif isinstance(widget, QLineEdit):
                shown = format_list(value) if isinstance(value, (list, tuple)) else str(value)
                widget.setText(shown)
        finally:
            widget.blockSignals(False)

    def values(self) -> tuple[dict[str, Any], list[str]]:
        result: dict[str, Any] = {}
        problems: list[str] = []
        for name, widget in self.widgets.items():
            if isinstance(widget, QCheckBox):
                result[name] = widget.isChecked()
            elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
                result[name] = widget.value()
            elif isinstance(self.defaults[name], (list, tuple)):
                try:
                    result[name] = parse_list(widget.text(), self._item_type(name))
                except ValueError as error:
                    problems.append(f"{self.section}.{name}: {error}")
            else:
                result[name] = widget.text()
        return result | self.extra, problems

    def set_read_only(self, read_only: bool) -> None:
        for widget in self.widgets.values():
            widget.setEnabled(not read_only)
