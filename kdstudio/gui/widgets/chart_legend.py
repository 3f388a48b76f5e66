"""A chart's legend as a row of Qt widgets beside the plot (never over its data): one
entry per curve, clicked to hide or show that curve; entries wrap onto more rows when
the chart is narrow."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QMouseEvent, QPainter, QPaintEvent, QPen, QResizeEvent
from PySide6.QtWidgets import QGridLayout, QSizePolicy, QWidget

SAMPLE_WIDTH = 22
HIDDEN_TEXT = QColor(160, 160, 160)
ENTRY_TIP = "Click to hide or show this curve"


class LegendEntry(QWidget):
    """A curve's line sample and name; a click hides or shows the curve."""

    toggled = Signal(bool)

    def __init__(self, name: str, item: pg.PlotDataItem, text_size: float = 8.0,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.item = item
        font = QFont(self.font())
        font.setPointSizeF(text_size)
        self.setFont(font)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip(f"{name}: {ENTRY_TIP.lower()}")
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:  # noqa: N802
        metrics = self.fontMetrics()
        return QSize(SAMPLE_WIDTH + 6 + metrics.horizontalAdvance(self.name) + 10,
                     metrics.height() + 2)

    def is_shown(self) -> bool:
        return self.item.isVisible()

    def set_shown(self, shown: bool) -> None:
        if shown != self.item.isVisible():
            self.item.setVisible(shown)
            self.update()
            self.toggled.emit(shown)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.set_shown(not self.is_shown())
            event.accept()
        else:
            super().mousePressEvent(event)

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        shown = self.is_shown()
        middle = self.height() / 2
        pen = QPen(pg.mkPen(self.item.opts["pen"]))
        pen.setCosmetic(False)
        if not shown:
            pen.setColor(HIDDEN_TEXT)
        painter.setPen(pen)
        painter.drawLine(QPointF(1, middle), QPointF(SAMPLE_WIDTH - 1, middle))
        if self.item.opts.get("symbol") is not None:
            brush = pg.mkBrush(self.item.opts["symbolBrush"]) if shown else HIDDEN_TEXT
            painter.setBrush(brush)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.drawEllipse(QPointF(SAMPLE_WIDTH / 2, middle), 3, 3)
        painter.setPen(self.palette().windowText().color() if shown else HIDDEN_TEXT)
        font = painter.font()
        font.setStrikeOut(not shown)
        painter.setFont(font)
        painter.drawText(QRectF(SAMPLE_WIDTH + 6, 0, self.width() - SAMPLE_WIDTH - 6,
                                self.height()),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, self.name)
        painter.end()


class ChartLegend(QWidget):
    """The entries of a chart's curves in a grid with as many columns as fit."""

    def __init__(self, text_size: float = 8.0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text_size = text_size
        self.entries: list[LegendEntry] = []
        self._columns = 0
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(4, 0, 4, 0)
        self.grid.setHorizontalSpacing(6)
        self.grid.setVerticalSpacing(0)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setToolTip(ENTRY_TIP)
        self.setVisible(False)

    def add(self, name: str, item: pg.PlotDataItem) -> LegendEntry:
        entry = LegendEntry(name, item, self.text_size, self)
        self.entries.append(entry)
        self._arrange(force=True)
        self.setVisible(True)
        return entry

    def entry(self, name: str) -> LegendEntry | None:
        return next((e for e in self.entries if e.name == name), None)

    def remove(self, item: pg.PlotDataItem) -> None:
        for entry in [e for e in self.entries if e.item is item]:
            self.entries.remove(entry)
            self.grid.removeWidget(entry)
            entry.deleteLater()
        self._arrange(force=True)
        self.setVisible(bool(self.entries))

    def columns_for(self, width: int) -> int:
        """How many entries fit side by side in `width` pixels (at least one)."""
        if not self.entries:
            return 1
        widest = max(entry.sizeHint().width() for entry in self.entries)
        margins = self.grid.contentsMargins()
        usable = width - margins.left() - margins.right()
        return max(1, min(len(self.entries),
                          (usable + self.grid.horizontalSpacing())
                          // (widest + self.grid.horizontalSpacing())))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._arrange()

    def _arrange(self, force: bool = False) -> None:
        columns = self.columns_for(self.width())
        if columns == self._columns and not force:
            return
        self._columns = columns
        for entry in self.entries:
            self.grid.removeWidget(entry)
        for index, entry in enumerate(self.entries):
            self.grid.addWidget(entry, index // columns, index % columns,
                                Qt.AlignmentFlag.AlignLeft)
        for column in range(self.grid.columnCount()):
            self.grid.setColumnStretch(column, 0)
        self.grid.setColumnStretch(columns, 1)
        rows = (len(self.entries) + columns - 1) // columns
        height = rows * (self.entries[0].sizeHint().height() if self.entries else 0)
        self.setFixedHeight(height)
