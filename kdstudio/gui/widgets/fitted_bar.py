"""A progress bar that never shows its text cut: of the texts it is given, longest first,
it shows the first that fits its width; the longest is in its tooltip when it is not shown."""

from __future__ import annotations

from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QProgressBar, QWidget

TEXT_MARGIN_PX = 12  # the style's room round the text inside the bar


class FittedBar(QProgressBar):
    """A QProgressBar whose text is set with `set_texts(longest, ..., shortest)`;
    `full_text` is the longest, `setFormat(text)` sets one text."""

    def __init__(self, tip: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._texts: tuple[str, ...] = ("",)
        self._tip = tip
        self.setTextVisible(True)
        self.setToolTip(tip)

    @property
    def full_text(self) -> str:
        return self._texts[0]

    def set_texts(self, *texts: str) -> None:
        self._texts = texts or ("",)
        self._fit()

    def setFormat(self, text: str) -> None:  # noqa: N802 (Qt's name)
        self.set_texts(text)

    def set_tip(self, tip: str) -> None:
        self._tip = tip
        self._fit()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        room = self.width() - TEXT_MARGIN_PX
        metrics = self.fontMetrics()
        shown = next((text for text in self._texts if metrics.horizontalAdvance(text) <= room),
                     self._texts[-1])
        if shown != self.format():
            super().setFormat(shown)
        tip = self._tip if shown == self._texts[0] else "\n".join(
            part for part in (self._texts[0], self._tip) if part)
        if tip != self.toolTip():
            self.setToolTip(tip)
