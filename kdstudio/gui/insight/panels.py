"""The plot panels of the dark-knowledge view: a titled plot with a hover read-out, and a
class x class heat map drawn from a QImage of its own."""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from kdstudio.gui.widgets.elided_label import ElidedLabel
from kdstudio.gui.widgets.plots import white_plot

MAX_LABELLED_CLASSES = 20  # more classes: no values written in the heat maps' cells


class Panel(QWidget):
    """A titled pyqtgraph plot with a read-out of the value under the cursor."""

    def __init__(self, title: str, object_name: str, tooltip: str,
                 describe: Callable[[float, float], str] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._describe = describe
        self.plot = white_plot(object_name)
        self.plot.setMinimumSize(220, 180)
        self.plot.setToolTip(tooltip)
        self.item = self.plot.getPlotItem()
        self.item.setMenuEnabled(False)
        self.item.hideButtons()
        self.title = ElidedLabel(bold=True)  # one line; elided (whole in the tooltip) if narrow
        self.title.setObjectName(f"{object_name}Title")
        self.title.setToolTip(tooltip)
        self.set_title(title)
        self.hover = QLabel()
        self.hover.setObjectName(f"{object_name}Hover")
        self.hover.setTextFormat(Qt.TextFormat.RichText)
        self.hover.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.hover.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.note = pg.TextItem("", color=(120, 120, 120), anchor=(0.5, 0.5))
        self.note.setVisible(False)
        self.item.addItem(self.note, ignoreBounds=True)
        top = QHBoxLayout()
        top.setContentsMargins(2, 0, 2, 0)
        top.addWidget(self.title)
        top.addWidget(self.hover, 1)
        self.top = top
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)

    def set_title(self, title: str, detail: str = "") -> None:
        self.title.setText(f"{title} {detail}" if detail else title)

    def say(self, text: str) -> None:
        """A grey note in the middle of the plot (empty: none)."""
        self.note.setText(text)
        self.note.setVisible(bool(text))
        if text:
            view = self.item.getViewBox().viewRange()
            self.note.setPos((view[0][0] + view[0][1]) / 2, (view[1][0] + view[1][1]) / 2)

    def blank(self, text: str) -> None:
        """No data: empty axes with a note in the middle."""
        for side in ("bottom", "left"):
            self.item.getAxis(side).setTicks([[]])
        self.item.getViewBox().setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.say(text)

    def _mouse_moved(self, position: QPointF) -> None:
        box = self.item.getViewBox()
        if not box.sceneBoundingRect().contains(position):
            self.hover.clear()
            return
        point = box.mapSceneToView(position)
        self.hover.setText(self.describe(point.x(), point.y()))

    def describe(self, x: float, y: float) -> str:
        """The hover text at view coordinates (x, y)."""
        return self._describe(x, y) if self._describe is not None else ""


class MatrixImage(pg.GraphicsObject):
    """A matrix drawn as one coloured cell per entry, cell (row i, column j) covering
    [j, j + 1] x [i, i + 1] in view coordinates.

    The colours are computed here (colour map over `levels`, clipped) into a QImage that Qt
    owns outright (a deep copy): nothing Qt paints from points into a numpy buffer that
    Python may free or reuse, as pyqtgraph's ImageItem does.
    """

    def __init__(self, colormap: pg.ColorMap) -> None:
        super().__init__()
        self.colormap = colormap
        self.values = np.zeros((0, 0))
        self.colour_sign = np.ones((0, 0))  # colours map values * colour_sign
        self.levels = (0.0, 1.0)
        self.qimage = QImage()

    def set_values(self, values: np.ndarray, levels: tuple[float, float],
                   colour_sign: np.ndarray | None = None) -> None:
        """`colour_sign` (+1/-1 per cell): colour values * sign, e.g. so "better" reads the
        same on and off a confusion matrix's diagonal."""
        self.prepareGeometryChange()
        self.values = np.array(values, dtype=float)  # a copy of its own
        self.colour_sign = (np.ones_like(self.values) if colour_sign is None
                            else np.asarray(colour_sign, dtype=float))
        self.set_levels(levels)

    def set_levels(self, levels: tuple[float, float]) -> None:
        self.levels = (float(levels[0]), float(levels[1]))
        self.qimage = self._render()
        self.update()

    def colors(self) -> np.ndarray:
        """RGBA bytes (rows x columns x 4) of the cells as drawn."""
        low, high = self.levels
        shown = self.values * self.colour_sign
        scaled = (shown - low) / (high - low) if high > low else shown * 0.0
        finite = np.isfinite(scaled)
        clipped = np.clip(np.where(finite, scaled, 0.0), 0.0, 1.0)
        rgba = np.asarray(self.colormap.map(clipped.ravel(), mode="byte"), dtype=np.uint8)
        rgba = rgba.reshape(*self.values.shape, -1)
        if rgba.shape[-1] == 3:
            rgba = np.concatenate([rgba, np.full((*rgba.shape[:-1], 1), 255, np.uint8)], -1)
        rgba[~finite] = 0  # no value (NaN): a transparent cell
        return np.ascontiguousarray(rgba)

    def _render(self) -> QImage:
        rows, columns = self.values.shape
        if rows == 0 or columns == 0:
            return QImage()
        data = self.colors().tobytes()
        return QImage(data, columns, rows, 4 * columns, QImage.Format.Format_RGBA8888).copy()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt's name)
        rows, columns = self.values.shape
        return QRectF(0.0, 0.0, float(columns), float(rows))

    def paint(self, painter: QPainter, *_args: Any) -> None:
        if not self.qimage.isNull():
            painter.drawImage(self.boundingRect(), self.qimage)


class HeatMap(Panel):
    """A class x class matrix as an image: row = true class, column = the other class."""

    def __init__(self, title: str, object_name: str, tooltip: str, colormap: str | pg.ColorMap,
                 x_label: str, value_format: str, label_diagonal: bool = False,
                 label_all: bool = False, colorbar_label: str = "") -> None:
        """`label_diagonal`: write each diagonal value in its cell (for a colour scale
        that may saturate on the diagonal); `label_all`: write every non-zero value in its
        cell (zeros stay blank); `colorbar_label`: the colour bar's units."""
        super().__init__(title, object_name, tooltip)
        self.class_names: list[str] = []
        self.value_format = value_format
        self.label_diagonal = label_diagonal
        self.label_all = label_all
        self.cell_labels: list[pg.TextItem] = []
        if isinstance(colormap, str):
            colormap = pg.colormap.get(colormap)
        self.image = MatrixImage(colormap)
        self.item.addItem(self.image)
        box = self.item.getViewBox()
        box.invertY(True)  # row 0 at the top, as a matrix is read
        box.setAspectLocked(False)
        box.setMouseEnabled(x=False, y=False)
        self.item.setLabel("left", "true class")
        self.item.setLabel("bottom", x_label)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=colormap,
                                        interactive=False, width=12, pen="#888",
                                        colorMapMenu=False)
        self.colorbar.setColorMap(colormap)  # draws the bar; no image item is attached
        if colorbar_label:
            self.colorbar.axis.setLabel(colorbar_label)
        self.item.layout.addItem(self.colorbar, 2, 5)  # right of the plot, as pyqtgraph does
        self.item.layout.setColumnFixedWidth(4, 5)

    @property
    def values(self) -> np.ndarray:
        """The matrix shown (rows x columns); empty when none is."""
        return self.image.values

    def set_matrix(self, matrix: np.ndarray, class_names: list[str],
                   levels: tuple[float, float], colour_sign: np.ndarray | None = None) -> None:
        self.class_names = list(class_names)
        self.colorbar.setLevels(levels)
        self.image.set_values(np.asarray(matrix, dtype=float), levels, colour_sign)
        n = len(class_names)
        short = [name if len(name) <= 3 else str(i) for i, name in enumerate(class_names)]
        rows = [name if name == s or str(i) in name else f"{i} {name}"
                for i, (name, s) in enumerate(zip(class_names, short, strict=True))]
        self.item.getAxis("bottom").setTicks([[(i + 0.5, s) for i, s in enumerate(short)]])
        self.item.getAxis("left").setTicks([[(i + 0.5, s) for i, s in enumerate(rows)]])
        self.item.getViewBox().setRange(xRange=(0, n), yRange=(0, n), padding=0)
        self.image.setVisible(True)
        self._label_cells()
        self.say("")

    def _label_cells(self) -> None:
        for label in self.cell_labels:
            self.item.removeItem(label)
        self.cell_labels = []
        n = len(self.values)
        if n > MAX_LABELLED_CLASSES:
            return
        if self.label_all:
            for i, j in zip(*np.nonzero(np.round(self.values)), strict=True):
                label = pg.TextItem(format(self.values[i, j], self.value_format),
                                    color=(40, 40, 40), anchor=(0.5, 0.5))
                label.setPos(j + 0.5, i + 0.5)
                self.item.addItem(label)
                self.cell_labels.append(label)
            return
        if not self.label_diagonal:
            return
        for i in range(n):
            label = pg.TextItem(format(self.values[i, i], ".2f"), color="w",
                                anchor=(0.5, 0.5))
            label.setPos(i + 0.5, i + 0.5)
            self.item.addItem(label)
            self.cell_labels.append(label)

    def set_levels(self, levels: tuple[float, float]) -> None:
        self.colorbar.setLevels(levels)
        self.image.set_levels(levels)

    def clear_matrix(self, text: str) -> None:
        self.image.set_values(np.zeros((0, 0)), self.image.levels)
        self.image.setVisible(False)
        self._label_cells()
        self.blank(text)

    def describe(self, x: float, y: float) -> str:
        n = self.values.shape[0]
        row, column = math.floor(y), math.floor(x)
        if not (0 <= row < n and 0 <= column < n):
            return ""
        number = self.values[row, column]
        value = format(number, self.value_format) if round(number, 6) else "0"
        return (f"true <b>{html.escape(self.class_names[row])}</b> → "
                f"<b>{html.escape(self.class_names[column])}</b>: {value}")
