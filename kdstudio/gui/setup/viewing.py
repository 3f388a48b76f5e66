"""The banner above the form while it shows a saved run opened from the History: the form
is read-only until the user presses Edit (or Re-run, which starts the run again)."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget


def viewing_text(run: dict[str, Any]) -> str:
    """E.g. "Viewing run #7 mnist1d-kd (completed)"."""
    name = f" {run['name']}" if run.get("name") else ""
    return f"Viewing run #{run.get('id', '?')}{name} ({run.get('status', '?')})"


class ViewingBanner(QFrame):
    """"Viewing run #7 (completed): read-only" with Edit and Re-run."""

    edit_clicked = Signal()
    rerun_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("viewingBanner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.label = QLabel()
        self.label.setObjectName("viewingLabel")
        self.label.setWordWrap(True)
        self.edit_button = QPushButton("Edit")
        self.edit_button.setObjectName("viewingEditButton")
        self.edit_button.setToolTip("Make the form editable, starting from this run's config")
        self.rerun_button = QPushButton("Re-run")
        self.rerun_button.setObjectName("viewingRerunButton")
        self.rerun_button.setToolTip("Start a new run with this run's config")
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 8, 4)
        row.addWidget(self.label, 1)
        row.addWidget(self.edit_button)
        row.addWidget(self.rerun_button)
        self.edit_button.clicked.connect(self.edit_clicked)
        self.rerun_button.clicked.connect(self.rerun_clicked)
        self.hide()

    def show_run(self, run: dict[str, Any]) -> None:
        text = html.escape(viewing_text(run))
        self.label.setText(f"<b>{text}</b>: its config, read-only. Edit it or Re-run it.")
        self.label.setToolTip(viewing_text(run))
        self.show()
