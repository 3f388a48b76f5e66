"""Composite inputs of the form: a registry entry's parameters and a value's schedule.

`ParamEditor` shows the fields `param_fields` derives from a registry schema (model factory
defaults, dataset defaults, method specs), as rows of an existing form right after an
anchor row, so they line up with the other fields. Keys the schema does not know are kept
as given, so validation can name them.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from kdstudio.core.config.fields import Field
from kdstudio.core.config.rules import MAX_EPOCHS
from kdstudio.core.distill.schedules import SCHEDULE_KINDS
from kdstudio.gui.setup.inputs import (
    Input,
    NumberEdit,
    make_input,
    no_wheel,
    read_inputs,
    set_combo_value,
)
from kdstudio.gui.widgets.file_dialogs import open_file_name


class ParamEditor(QObject):
    """The parameters of one registry entry (e.g. `teacher.params` of the chosen model)."""

    changed = Signal()

    def __init__(self, field: Field, form: QFormLayout, anchor: QWidget) -> None:
        super().__init__(form)
        self.field = field
        self.section = field.key  # key path prefix, e.g. "teacher.params"
        self.form = form
        self.anchor = anchor
        self.inputs: dict[str, Input] = {}
        self.extra: dict[str, Any] = {}
        self.given: set[str] | None = None  # keys read back; None: all of them
        self._visible = True

    @property
    def widgets(self) -> dict[str, QWidget]:
        return {name: item.widget for name, item in self.inputs.items()}

    def set_schema(self, fields: list[Field]) -> None:
        """Rebuild the rows for these fields; values reset to the defaults."""
        for item in self.inputs.values():
            self.form.removeRow(item.row)
        self.inputs, self.extra, self.given = {}, {}, None
        row, _role = self.form.getWidgetPosition(self.anchor)
        for offset, field in enumerate(fields, start=1):
            item = make_input(field, self._browse, bool_text=False)
            item.set(field.default)
            name = field.key.rsplit(".", 1)[1]
            item.changed.connect(lambda name=name: self._edited(name))
            self.inputs[name] = item
            label = QLabel(field.label)
            label.setToolTip(field.tip)
            label.setBuddy(item.widget)
            self.form.insertRow(row + offset, label, item.row)
        self.set_visible(self._visible)

    def _browse(self, field: Field, edit: QLineEdit) -> None:
        """A file parameter (a custom model's Python file): pick it."""
        path = open_file_name(self.anchor, f"{field.key}: the Python file of the model",
                              edit.text(), "Python files (*.py);;All files (*)")
        if path:
            edit.setText(path)

    def _edited(self, name: str) -> None:
        if self.given is not None:
            self.given.add(name)
        self.changed.emit()

    def set_visible(self, visible: bool) -> None:
        self._visible = visible
        for item in self.inputs.values():
            self.form.setRowVisible(item.row, visible)

    def set_values(self, values: dict[str, Any]) -> None:
        """Show these values; missing keys take their defaults, unknown keys are kept."""
        values = values if isinstance(values, dict) else {}
        self.extra = {k: v for k, v in values.items() if k not in self.inputs}
        self.given = {k for k in values if k in self.inputs}
        for name, item in self.inputs.items():
            item.blockSignals(True)
            item.set(values.get(name, item.field.default))
            item.blockSignals(False)
        self.changed.emit()

    def values(self) -> tuple[dict[str, Any], list[str]]:
        """The values shown (with the unknown keys kept) and problems reading them."""
        shown, problems = read_inputs(self.inputs)
        result = {name: value for name, value in shown.items() if self.given is None
                  or name in self.given or value != self.inputs[name].field.default}
        return result | self.extra, problems

    def set_read_only(self, read_only: bool) -> None:
        for item in self.inputs.values():
            item.widget.setEnabled(not read_only)


class ScheduleInput(Input):
    """`distill.schedules.<key>`: kind, epochs and the start (warmup) or end (decay) value.

    Reads back the keys it was given (and those the user set), so a table loaded without
    `start` is saved without it.
    """

    def __init__(self, field: Field) -> None:
        key = field.key.rsplit(".", 1)[1]
        row = QWidget()
        super().__init__(field, QComboBox(), row)
        self.kind = self.widget
        self.kind.setObjectName(f"schedule_{key}_kind")
        for name in SCHEDULE_KINDS:
            self.kind.addItem(name, name)
        no_wheel(self.kind)
        self.epochs = QSpinBox()
        self.epochs.setObjectName(f"schedule_{key}_epochs")
        self.epochs.setRange(0, MAX_EPOCHS)
        self.epochs.setSuffix(" ep")
        self.epochs.setSpecialValueText("phase")
        no_wheel(self.epochs)
        self.value_label = QLabel()
        self.value = NumberEdit(float)
        self.value.setObjectName(f"schedule_{key}_value")
        self.value.setValue(0.0)
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        for widget, stretch in ((self.kind, 2), (self.epochs, 1), (self.value_label, 0),
                                (self.value, 1)):
            widget.setToolTip(field.tip)
            widget.setMinimumWidth(0 if widget is self.value_label else 64)
            line.addWidget(widget, stretch)
        self.key = key
        self.given: set[str] = set()
        self._setting = False
        self.kind.currentIndexChanged.connect(self._on_kind)
        self.epochs.valueChanged.connect(lambda _v: self._on_edit("epochs"))
        self.value.valueChanged.connect(lambda _v: self._on_edit(self._value_key()))
        self._setting = True
        self._on_kind()
        self._setting = False

    def marked(self) -> list[QWidget]:
        return [self.kind, self.epochs, self.value]

    def _value_key(self) -> str:
        return "start" if self.kind.currentData() == "warmup" else "end"

    def _on_kind(self, *_args: Any) -> None:
        name = self.kind.currentData()
        self.epochs.setEnabled(name != "constant")
        self.value.setEnabled(name != "constant")
        self.value_label.setText({"warmup": "start", "decay": "end"}.get(name, ""))
        if not self._setting:  # sensible starting points when the user picks a kind
            self.given = set() if name == "constant" else {"kind", "epochs", self._value_key()}
            if name == "warmup" and self.epochs.value() == 0:
                self.epochs.setValue(1)
            if self.key == "temperature" and name != "constant" and self.value.value() == 0:
                self.value.setValue(1.0)
        self.changed.emit()

    def _on_edit(self, key: str) -> None:
        if not self._setting:
            self.given.add(key)
        self.changed.emit()

    def get(self) -> tuple[Any, str | None]:
        name = self.kind.currentData()
        if name == "constant" and not self.given:
            return None, None
        value = self.value.value()
        if value is None:
            return None, f"{self.field.key}.{self._value_key()}: not a number"
        entry: dict[str, Any] = {"kind": name}
        if "epochs" in self.given or self.epochs.value():
            entry["epochs"] = self.epochs.value()
        if self._value_key() in self.given or value:
            entry[self._value_key()] = value
        return entry, None

    def set(self, value: Any) -> None:
        entry = value if isinstance(value, dict) else {}
        self._setting = True
        try:
            set_combo_value(self.kind, entry.get("kind", "constant"))
            self.given = set(entry)
            epochs = entry.get("epochs", 0)
            self.epochs.setValue(epochs if isinstance(epochs, int) else 0)
            amount = entry.get(self._value_key(), 0.0)
            self.value.setValue(float(amount) if isinstance(amount, (int, float)) else 0.0)
            self._on_kind()
        finally:
            self._setting = False
