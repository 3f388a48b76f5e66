"""The setup form's skeleton, shown while the engine (torch) loads: the form's boxes and the
rows of the field table with the default values, all disabled, under a "Loading PyTorch…"
note that counts the seconds.

It is built from the same table as the real form (`FIELDS`, `GROUPS`, `make_input`), which
is Qt's and the config's only: no registry is read, so torch is not imported. Rows that
need a registry (the models' and datasets' parameters, rows shown only for some methods or
datasets, the choice lists) are left out or show only the default value.
"""

from __future__ import annotations

import dataclasses
import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from kdstudio.core.config import RunConfig
from kdstudio.core.config.fields import FIELDS, GROUPS, Field
from kdstudio.core.config.rules import value_at
from kdstudio.gui.setup.inputs import form_scroll, make_input
from kdstudio.gui.setup.more_options import MoreOptions

LOADING_NOTE = "Loading PyTorch…"
LOADING_DETAIL = "The form becomes editable when the training engine is ready."
TICK_MS = 100
NOTE_PADDING = 10  # the note's border and padding: then as tall as the sizes card
COMPOSITE_KINDS = ("params", "schedule")  # built from the registries: not in the skeleton


def skeleton_rows() -> list[Field]:
    """The table's fields the skeleton shows: those always shown, composites left out."""
    return [field for field in FIELDS
            if field.kind not in COMPOSITE_KINDS and field.shown is None]


class SetupSkeleton(QWidget):
    """The disabled form, with the loading note (`note`) where the sizes card will be."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("setupSkeleton")
        self.started = time.monotonic()
        self.failed = False
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.note = QLabel()
        self.note.setObjectName("engineLoadingNote")
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.RichText)
        # as tall as the sizes card that takes its place (three lines): the form stays put
        self.note.setMinimumHeight(3 * self.note.fontMetrics().lineSpacing() + NOTE_PADDING)
        outer.addWidget(self.note)

        self.body = QWidget()
        self.body.setEnabled(False)
        self.body.setToolTip("Editable once PyTorch has loaded")
        scroll, column = form_scroll("setupSkeletonScroll", self.body)
        forms: dict[str, QFormLayout] = {}
        self.more = MoreOptions()
        self.more.button.setObjectName("")  # the real form's button keeps the name
        for group, title in GROUPS.items():
            box = self.more if group == "more" else QGroupBox(title)
            forms[group] = self.more.form if group == "more" else _form(box)
            column.addWidget(box)
        column.addStretch(1)
        outer.addWidget(scroll, 1)
        self.captions: list[str] = []
        defaults = RunConfig().to_dict()
        for field in skeleton_rows():
            self._add(forms[field.group], field, value_at(defaults, field.key))

        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.show_elapsed)
        self.timer.start()
        self.show_elapsed()

    def _add(self, form: QFormLayout, field: Field, value: object) -> None:
        if field.heading:
            form.addRow(QLabel(f"<i>{field.heading}</i>"))
        if field.key == "teacher.checkpoint":  # the source combo stands in its place
            source = QComboBox()
            source.addItem("Train it here")
            form.addRow(self._caption("Source"), source)
            return
        shown = str(value) if value is not None else ""
        if field.kind in ("choice", "model"):  # the lists come from the registries
            field = dataclasses.replace(field, choices=lambda: [(value, shown, "")])
        item = make_input(dataclasses.replace(field, name=""))
        item.set(value)
        if field.kind == "bool":
            form.addRow(item.row)
            self.captions.append(field.label)
        else:
            form.addRow(self._caption(field.label), item.row)

    def _caption(self, text: str) -> QLabel:
        self.captions.append(text)
        return QLabel(text)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def show_elapsed(self) -> None:
        """The note with the seconds spent loading so far."""
        if not self.failed:
            self.note.setText(f"<b>{LOADING_NOTE}</b> {self.elapsed():.1f} s<br>"
                              f"{LOADING_DETAIL}")

    def show_failure(self, text: str) -> None:
        """The engine could not be loaded: say so in the note, and stop counting."""
        self.failed = True
        self.timer.stop()
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.note.setText(text)

    def stop(self) -> None:
        """The real form replaces the skeleton: nothing left to count."""
        self.timer.stop()


def _form(group: QGroupBox) -> QFormLayout:
    form = QFormLayout(group)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return form
