"""The run's log: its messages, one line each, stamped and coloured by level."""

from __future__ import annotations

import html
import time

from PySide6.QtWidgets import QPlainTextEdit, QWidget

from kdstudio.gui.widgets.colours import LOG_COLORS

MAX_LINES = 5000


class LogPanel(QPlainTextEdit):
    """Read-only list of the run's messages; the oldest go beyond `MAX_LINES`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("logView")
        self.setReadOnly(True)
        self.setMaximumBlockCount(MAX_LINES)
        self.setToolTip("Messages of the run")
        self.setPlaceholderText("The run's messages appear here.")

    def add(self, message: str, level: str = "info", when: float | None = None) -> None:
        """Append a line, stamped with `when` (seconds since the epoch) or now."""
        color = LOG_COLORS.get(level)  # info: the palette's text colour, light or dark
        style = f" style='color:{color}'" if color and level != "info" else ""
        stamp = time.strftime("%H:%M:%S", time.localtime(when))
        self.appendHtml(f"<span style='color:#888'>{stamp}</span> "
                        f"<span{style}>{html.escape(message)}</span>")
