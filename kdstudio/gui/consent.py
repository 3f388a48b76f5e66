"""The dialog that asks before a run imports a custom model's Python file: its path and
sha256, Trust or Cancel. Nothing of the file is imported before Trust."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget


def consent_box(parent: QWidget | None, files: Sequence[Any]) -> QMessageBox:
    """The question for `files` (CodeFile each); Cancel is the default button."""
    box = QMessageBox(parent)
    box.setObjectName("codeConsentDialog")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Run your own code?")
    box.setTextFormat(Qt.TextFormat.RichText)
    listed = "".join(
        f"<li><b>{html.escape(code.key)}</b>: <code>{html.escape(str(code.path))}</code><br>"
        f"sha256 <code>{code.sha256}</code></li>" for code in files)
    box.setText("This run imports Python code from your files. Importing a file runs it "
                "with your permissions: trust it only if you know what it does."
                f"<ul>{listed}</ul>")
    trust = box.addButton("Trust and run", QMessageBox.ButtonRole.AcceptRole)
    trust.setObjectName("trustCodeButton")
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    cancel.setObjectName("cancelCodeButton")
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    return box


def ask_code_consent(parent: QWidget | None, files: Sequence[Any]) -> bool:
    """Ask (modal); True only when the user pressed Trust."""
    box = consent_box(parent, files)
    box.exec()
    clicked = box.clickedButton()
    return clicked is not None and clicked.objectName() == "trustCodeButton"
