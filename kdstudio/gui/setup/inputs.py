"""Widgets for the fields of the config's field table, each able to hold any valid value.

`make_input(field)` picks the widget from the field's kind and rule: a spin box only where
the rule's range fits one (32-bit integers), otherwise a validated text field; floats are
text fields that show `repr(value)`, so every float (3e-07, 0.123456, 2000.0) comes back
exactly. An `Input` reads (`get`) and writes (`set`) its value and says when it changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRegularExpression, Qt, Signal
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QCompleter,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from kdstudio.core.config.fields import INT32, Field
from kdstudio.core.config.tips import wrap_tip

FLOAT_PATTERN = r"[+-]?(\d*\.?\d*([eE][+-]?\d*)?|[iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])"
INT_PATTERN = r"[+-]?\d*"


class NumberEdit(QLineEdit):
    """A text field for one number (int or float), exact both ways; `value()` is None while
    the text is not a number. With `special`, an empty field means 0 (shown as a hint)."""

    valueChanged = Signal(object)  # noqa: N815 - Qt naming, as QSpinBox

    def __init__(self, kind: type, special: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.special = special
        pattern = INT_PATTERN if kind is int else FLOAT_PATTERN
        self.setValidator(QRegularExpressionValidator(QRegularExpression(pattern), self))
        if special:
            self.setPlaceholderText(special)
        self.textChanged.connect(lambda _text: self.valueChanged.emit(self.value()))

    def value(self) -> int | float | None:
        text = self.text().strip()
        if not text and self.special:
            return self.kind(0)
        try:
            return int(text) if self.kind is int else float(text)
        except ValueError:
            return None

    def setValue(self, value: float) -> None:  # noqa: N802 - Qt naming, as QSpinBox
        if self.special and value == 0:
            self.setText("")
        else:
            self.setText(str(int(value)) if self.kind is int else repr(float(value)))


def no_wheel(widget: QWidget) -> QWidget:
    """Spin boxes and lists in a scrolling form keep their value when the page scrolls."""
    widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
    widget.wheelEvent = lambda event: event.ignore()  # type: ignore[method-assign]
    return widget


def set_combo_value(combo: QComboBox, value: str) -> None:
    """Select the item whose data is `value`, adding it when missing (validation names it)."""
    index = combo.findData(value)
    if index < 0:
        combo.addItem(str(value), value)
        index = combo.count() - 1
    combo.setCurrentIndex(index)


def format_list(values: Any) -> str:
    return ", ".join(str(v) for v in values) if isinstance(values, (list, tuple)) else str(values)


def parse_list(text: str, item_type: type) -> list[Any]:
    """`"32, 64"` -> [32, 64]; raises ValueError with a readable message."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        return [item_type(p) for p in parts]
    except ValueError:
        kind = "whole numbers" if item_type is int else "numbers"
        raise ValueError(f"expected {kind} separated by commas, like 32, 64 (got '{text}')"
                         ) from None


class Input(QObject):
    """One field's widget: `row` goes into the form, `widget` is marked and focused.
    Abstract: each kind of widget below defines `get` and `set` (a QObject cannot take
    ABCMeta as its metaclass, hence NotImplementedError)."""

    changed = Signal()

    def __init__(self, field: Field, widget: QWidget, row: QWidget | None = None) -> None:
        super().__init__(widget)
        self.field = field
        self.widget = widget
        self.row = row or widget
        widget.setToolTip(field.tip)
        if field.name:
            widget.setObjectName(field.name)

    def get(self) -> tuple[Any, str | None]:
        """The value shown, and a problem when the text is not a value."""
        raise NotImplementedError

    def set(self, value: Any) -> None:
        raise NotImplementedError

    def _emit(self, *_args: Any) -> None:
        self.changed.emit()


class TextInput(Input):
    def __init__(self, field: Field, row_button: tuple[str, Callable[[QLineEdit], None]]
                 | None = None) -> None:
        edit = QLineEdit()
        edit.setPlaceholderText(field.placeholder)
        row = None
        if row_button:
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            line.addWidget(edit, 1)
            button = QPushButton(row_button[0])
            button.setToolTip(f"Pick the {field.label.lower()}")
            button.clicked.connect(lambda: row_button[1](edit))
            line.addWidget(button)
        super().__init__(field, edit, row)
        edit.textChanged.connect(self._emit)

    def get(self) -> tuple[Any, str | None]:
        return self.widget.text().strip(), None

    def set(self, value: Any) -> None:
        self.widget.setText("" if value is None else str(value))


class ListInput(TextInput):
    def get(self) -> tuple[Any, str | None]:
        try:
            return parse_list(self.widget.text(), self.field.item_type), None
        except ValueError as error:
            return None, f"{self.field.key}: {error}"

    def set(self, value: Any) -> None:
        self.widget.setText(format_list(value))


class NumberInput(Input):
    """A spin box where the rule's range fits one, else a NumberEdit."""

    def __init__(self, field: Field) -> None:
        if field.kind == "int" and (field.fits_int32() or field.rule is None):
            widget: QWidget = QSpinBox()
            low = INT32[0] if field.minimum is None else int(field.minimum)
            high = INT32[1] if field.maximum is None else int(field.maximum)
            widget.setRange(low, high)
            widget.setGroupSeparatorShown(False)
            if field.special and low == 0:
                widget.setSpecialValueText(field.special)
            no_wheel(widget)
        else:
            widget = NumberEdit(int if field.kind == "int" else float, field.special)
        super().__init__(field, widget)
        widget.valueChanged.connect(self._emit)

    def get(self) -> tuple[Any, str | None]:
        value = self.widget.value()
        if value is None:
            return None, f"{self.field.key}: not a number ({self.widget.text()!r})"
        return value, None

    def set(self, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(self.widget, QSpinBox) and isinstance(value, float):
                return  # a spin box holds whole numbers; the difference is reported
            self.widget.setValue(value)


class BoolInput(Input):
    def __init__(self, field: Field, with_text: bool = True) -> None:
        super().__init__(field, QCheckBox(field.label if with_text else ""))
        self.widget.toggled.connect(self._emit)

    def get(self) -> tuple[Any, str | None]:
        return self.widget.isChecked(), None

    def set(self, value: Any) -> None:
        if isinstance(value, bool):
            self.widget.setChecked(value)


class ChoiceInput(Input):
    def __init__(self, field: Field) -> None:
        combo = QComboBox()
        for value, label, tip in field.choices() if field.choices else ():
            combo.addItem(label, value)
            if tip:
                combo.setItemData(combo.count() - 1, wrap_tip(tip),
                                  Qt.ItemDataRole.ToolTipRole)
        super().__init__(field, combo)
        combo.currentIndexChanged.connect(self._emit)

    def get(self) -> tuple[Any, str | None]:
        return self.widget.currentData(), None

    def set(self, value: Any) -> None:
        set_combo_value(self.widget, value)


class ModelCombo(QComboBox):
    """An editable combo that says when it is first used (focused or opened)."""

    first_used = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._used = False

    def _use(self) -> None:
        if not self._used:
            self._used = True
            self.first_used.emit()

    def focusInEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._use()
        super().focusInEvent(event)

    def showPopup(self) -> None:  # noqa: N802 - Qt override
        self._use()
        super().showPopup()


class ModelInput(Input):
    """The architecture: the registered models, and, from the first time the list is used,
    every `torchvision:`/`timm:` model installed here (listing them imports the packages,
    a second or so, so the form does not wait for it). Typing filters the list by any part of
    the name, in any case; a typed name not in the list is kept (validation names it)."""

    def __init__(self, field: Field, more_names: Callable[[], list[str]] | None = None) -> None:
        combo = ModelCombo()
        combo.setEditable(True)
        combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        combo.setMaxVisibleItems(20)
        for value, label, tip in field.choices() if field.choices else ():
            combo.addItem(label, value)
            if tip:
                combo.setItemData(combo.count() - 1, wrap_tip(tip),
                                  Qt.ItemDataRole.ToolTipRole)
        completer = combo.completer()
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        no_wheel(combo)
        super().__init__(field, combo)
        self._more_names = more_names
        combo.first_used.connect(self.offer_all)
        combo.currentTextChanged.connect(self._emit)

    def get(self) -> tuple[Any, str | None]:
        text = self.widget.currentText().strip()
        index = self.widget.findText(text)  # an entry's label (e.g. "file only ..."): its value
        if index >= 0 and isinstance(self.widget.itemData(index), str):
            return self.widget.itemData(index), None
        return text, None

    def set(self, value: Any) -> None:
        text = "" if value is None else str(value)
        if text and self.widget.findData(text) < 0:
            self.widget.addItem(text, text)
        index = self.widget.findData(text)
        if index >= 0:
            self.widget.setCurrentIndex(index)
            text = self.widget.itemText(index)
        self.widget.setEditText(text)

    def offer_all(self) -> None:
        """Add the models that `more_names` lists (once), keeping the text shown."""
        names, self._more_names = (self._more_names() if self._more_names else []), None
        combo = self.widget
        known = {combo.itemData(i) for i in range(combo.count())}
        text = combo.currentText()
        combo.blockSignals(True)
        for name in names:
            if name not in known:
                combo.addItem(name, name)
        combo.setEditText(text)
        combo.blockSignals(False)


class LayerInput(Input):
    """An editable list of the model's layers; a name not in the list is kept (and reported
    by validation)."""

    def __init__(self, field: Field) -> None:
        combo = QComboBox()
        combo.setEditable(True)
        combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        no_wheel(combo)
        super().__init__(field, combo)
        combo.currentTextChanged.connect(self._emit)

    def get(self) -> tuple[Any, str | None]:
        return self.widget.currentText().strip(), None

    def set(self, value: Any) -> None:
        self.widget.setEditText(str(value))

    def set_layers(self, names: list[str]) -> None:
        """Offer these layers; keep the text when it is one of them or was typed in."""
        combo = self.widget
        old_items = [combo.itemText(i) for i in range(combo.count())]
        if names == old_items:
            return
        text = combo.currentText().strip()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(names)
        if text in names or (text and text not in old_items):
            combo.setEditText(text)
        else:
            combo.setCurrentIndex(names.index("embedding") if "embedding" in names
                                  else len(names) - 1)
        combo.blockSignals(False)


def read_inputs(inputs: dict[str, Input]) -> tuple[dict[str, Any], list[str]]:
    """The values of these inputs by name (those that read as None left out), and the
    problems of those that do not read."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, item in inputs.items():
        value, problem = item.get()
        if problem:
            problems.append(problem)
        elif value is not None:
            values[name] = value
    return values, problems


def make_input(field: Field, browse: Callable[[Field, QLineEdit], None] | None = None,
               bool_text: bool = True) -> Input:
    """The widget of a table field (not `params` or `schedule`, which are composites)."""
    if field.kind in ("int", "float"):
        return NumberInput(field)
    if field.kind == "bool":
        return BoolInput(field, bool_text)
    if field.kind == "choice":
        return ChoiceInput(field)
    if field.kind == "model":
        return ModelInput(field, _ecosystem_models)
    if field.kind == "layer":
        return LayerInput(field)
    if field.kind == "list":
        return ListInput(field)
    if field.kind in ("folder", "file") and browse is not None:
        return TextInput(field, ("Browse…", lambda edit: browse(field, edit)))
    return TextInput(field)


def _ecosystem_models() -> list[str]:
    """The torchvision:/timm: models installed here (imports those packages)."""
    from kdstudio.core.models.ecosystem import ecosystem_models

    return ecosystem_models()


def form_scroll(name: str, body: QWidget) -> tuple[QScrollArea, QVBoxLayout]:
    """A vertical scroll area named `name` around `body`, and the column of `body` that
    the form's group boxes go in (the real form and its skeleton share this layout)."""
    scroll = QScrollArea()
    scroll.setObjectName(name)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    column = QVBoxLayout(body)
    column.setContentsMargins(4, 4, 16, 4)
    scroll.setWidget(body)
    return scroll, column
