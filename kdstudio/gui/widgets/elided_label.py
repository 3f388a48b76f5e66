"""A plain-text label that shrinks below its text: it elides each line to its width
("Learning ra…") and shows the whole text as its tooltip while elided."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

MIN_CHARS = 6  # the narrowest an elided label gets, in average character widths


class ElidedLabel(QLabel):
    """A plain-text QLabel whose lines are elided on the right to fit; `full_text` is what
    was set."""

    def __init__(self, text: str = "", parent: QWidget | None = None, bold: bool = False) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        if bold:
            font = self.font()
            font.setBold(True)
            self.setFont(font)
        self._full_text = ""
        self._own_tip = ""
        self._elided = False
        self.setText(text)

    @property
    def full_text(self) -> str:
        return self._full_text

    @property
    def is_elided(self) -> bool:
        return self._elided

    def setText(self, text: str) -> None:  # noqa: N802
        self._full_text = text
        super().setText(text)
        self._update_elision()

    def setToolTip(self, tip: str) -> None:  # noqa: N802
        """A tooltip of its own, shown below the full text while elided."""
        self._own_tip = tip
        self._update_tip()

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        hint = super().minimumSizeHint()
        narrowest = self.fontMetrics().averageCharWidth() * MIN_CHARS
        return QSize(min(hint.width(), narrowest), hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._update_elision()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        if not self._elided:
            super().paintEvent(event)
            return
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        room = self.contentsRect()
        metrics = self.fontMetrics()
        shown = "\n".join(metrics.elidedText(line, Qt.TextElideMode.ElideRight, room.width())
                          for line in self._full_text.split("\n"))
        painter.drawText(room, int(self.alignment()), shown)

    def _update_elision(self) -> None:
        room = self.contentsRect().width()
        widest = max(self.fontMetrics().horizontalAdvance(line)
                     for line in self._full_text.split("\n"))
        self._elided = widest > room > 0
        self._update_tip()
        self.update()

    def _update_tip(self) -> None:
        if self._elided:
            tip = self._full_text if not self._own_tip else f"{self._full_text}\n{self._own_tip}"
        else:
            tip = self._own_tip
        super().setToolTip(tip)
