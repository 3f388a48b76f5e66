"""The compare view's parallel-coordinates chart: an axis per varying config key and the
metric last, a polyline per run (or seed group) coloured by the metric or the run; drag
along an axis to brush a range (click the axis to clear it): brushed lines stay coloured,
the others turn grey, and `selection_changed` tells the view which runs are kept."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from kdstudio.core.run_query import MISSING
from kdstudio.core.run_table import is_percent
from kdstudio.gui.compare.data import format_value
from kdstudio.gui.compare.parallel_data import METRICS, Axis, Line, brushed, build_axes
from kdstudio.gui.widgets.colours import run_colour
from kdstudio.gui.widgets.file_dialogs import export_with_dialog
from kdstudio.gui.widgets.plots import white_plot
from kdstudio.gui.widgets.theme import chart_colours, theme

GREY = (205, 205, 205, 140)
AXIS_PEN = (70, 70, 70)
BRUSH_FILL = (31, 119, 180, 50)
GRAB = 0.3  # how far from an axis (in axis spacings) a drag still brushes it
TOP, BOTTOM = 1.0, 0.0
COLORMAP = "viridis"
HOVER_HINT = "<span style='color:#777'>Point at a line to read its values</span>"


class BrushBox(pg.ViewBox):
    """A view box that turns vertical drags near an axis into brushes, not pans."""

    def __init__(self, panel: ParallelPanel) -> None:
        super().__init__(enableMenu=False)
        self.panel = panel
        self.setMouseEnabled(x=False, y=False)

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:  # noqa: N802
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        start = self.mapSceneToView(ev.buttonDownScenePos())
        now = self.mapSceneToView(ev.scenePos())
        index = self.panel.axis_near(start.x())
        if index is not None:
            self.panel.set_brush(index, start.y(), now.y())

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        index = self.panel.axis_near(self.mapSceneToView(ev.scenePos()).x())
        if index is not None:
            self.panel.clear_brush(index)


class ParallelPanel(QWidget):
    """Controls (metric, colour, clear, export), the chart and a hover read-out."""

    selection_changed = Signal(object)  # run ids inside every brush
    metric_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lines: list[Line] = []
        self.axes: list[Axis] = []
        self.brushes: dict[int, tuple[float, float]] = {}
        self._items: list[pg.PlotDataItem] = []
        self._brush_items: dict[int, QGraphicsRectItem] = {}
        self._hovered = -1

        self.metric_box = QComboBox()
        self.metric_box.setObjectName("compareParallelMetric")
        self.metric_box.setToolTip("The metric on the last axis (accuracies and KD gain in "
                                   "percent points)")
        for metric in METRICS:
            self.metric_box.addItem(metric, metric)
        self.metric_box.currentIndexChanged.connect(
            lambda _i: self.metric_changed.emit(self.metric()))
        self.colour_box = QComboBox()
        self.colour_box.setObjectName("compareParallelColour")
        self.colour_box.setToolTip("Colour each line by the metric (dark: low, yellow: high) "
                                   "or by its run's colour")
        self.colour_box.addItem("by metric", "metric")
        self.colour_box.addItem("by run", "run")
        self.colour_box.currentIndexChanged.connect(
            lambda _i: self.draw(self.lines, self.axis_keys()[:-1]))
        self.clear_button = QPushButton("Clear brushes")
        self.clear_button.setObjectName("compareParallelClear")
        self.clear_button.setToolTip("Remove every brushed range: all runs count again")
        self.clear_button.clicked.connect(self.clear_brushes)
        export = QToolButton()
        export.setObjectName("compareParallelExport")
        export.setText("Export")
        export.setToolTip("Save the chart as a PNG image, or its values as a CSV table")
        export.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(export)
        menu.addAction("PNG image", lambda: self._export_dialog("png"))
        menu.addAction("CSV table", lambda: self._export_dialog("csv"))
        export.setMenu(menu)
        self.hover_label = QLabel()
        self.hover_label.setObjectName("compareParallelHover")
        self.hover_label.setTextFormat(Qt.TextFormat.RichText)
        self.hover_label.setWordWrap(True)
        self.hover_label.setMinimumHeight(self.hover_label.fontMetrics().height() + 2)
        self.hover_label.setToolTip("The values of the line under the cursor")
        self.note = QLabel()
        self.note.setObjectName("compareParallelNote")
        self.note.setWordWrap(True)

        self.box = BrushBox(self)
        self.plot = white_plot("compareParallel", viewBox=self.box)
        item = self.plot.getPlotItem()
        item.hideAxis("left")
        item.hideAxis("bottom")
        item.setMenuEnabled(False)
        item.hideButtons()
        self.plot.setToolTip("Drag up or down along an axis to keep only the runs in that "
                             "range; click the axis to clear it")
        self.plot.scene().sigMouseMoved.connect(self._hover)

        tools = QHBoxLayout()
        tools.setContentsMargins(2, 0, 2, 0)
        tools.addWidget(QLabel("<b>Parallel coordinates</b>  metric:"))
        tools.addWidget(self.metric_box)
        tools.addWidget(QLabel("colour:"))
        tools.addWidget(self.colour_box)
        tools.addWidget(self.clear_button)
        tools.addWidget(export)
        tools.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(tools)
        layout.addWidget(self.hover_label)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.note)
        theme().changed.connect(self._redraw)  # axis titles and ticks in the theme's colours

    # ------------------------------------------------------------ content

    def metric(self) -> str:
        return self.metric_box.currentData()

    def axis_keys(self) -> list[str]:
        return [axis.key for axis in self.axes]

    def draw(self, lines: list[Line], keys: list[str]) -> None:
        """Lines over an axis per key and the metric; brushes on axes that stay are kept."""
        kept = {self.axes[i].key: span for i, span in self.brushes.items()
                if i < len(self.axes)}
        self.lines = lines
        self.axes = build_axes(lines, keys, self.metric()) if lines else []
        self.brushes = {i: kept[a.key] for i, a in enumerate(self.axes) if a.key in kept}
        plot = self.plot.getPlotItem()
        plot.clear()
        self._items, self._brush_items, self._hovered = [], {}, -1
        self.hover_label.setText(HOVER_HINT if lines else "")
        count = len(self.axes)
        if not lines:
            self.note.setText("Tick runs on the left to see them here.")
            self.selection_changed.emit(self.selected_ids())
            return
        self.box.setRange(xRange=(-0.55, count - 0.45), yRange=(-0.1, 1.12), padding=0)
        for index, axis in enumerate(self.axes):
            self._draw_axis(plot, index, axis)
        for number in range(len(self.lines)):
            ys = np.array([axis.positions[number] for axis in self.axes])
            item = pg.PlotDataItem(np.arange(count, dtype=float), ys, connect="finite")
            plot.addItem(item)
            self._items.append(item)
        for index in self.brushes:
            self._draw_brush(index)
        varying = count - 1
        self.note.setText(
            (f"{varying} config key(s) differ among these runs. " if varying else
             "The runs' configs do not differ (only their names or seeds). ")
            + "Drag along an axis to keep a range; click it to clear. "
            + (f"Colour: {self.metric()}, dark = low, yellow = high."
               if self.colour_box.currentData() == "metric" else "Colour: the run's colour."))
        self._paint()
        self.selection_changed.emit(self.selected_ids())

    def _redraw(self) -> None:
        self.draw(self.lines, self.axis_keys()[:-1])

    def _draw_axis(self, plot: pg.PlotItem, index: int, axis: Axis) -> None:
        colours = chart_colours()
        axis_pen = colours.text if theme().dark else AXIS_PEN
        line = pg.PlotDataItem([index, index], [BOTTOM, TOP], pen=pg.mkPen(axis_pen, width=1.5))
        line.setZValue(5)
        plot.addItem(line)
        text = _short(axis.key)
        if index == len(self.axes) - 1 and is_percent(axis.key):
            text += " (%)"
        title = pg.TextItem(text, color=colours.legend_text, anchor=(0.5, 1.0))
        title.setHtml(f"<b>{text}</b>")
        title.setPos(index, TOP + 0.03)
        plot.addItem(title)
        for position, text in axis.ticks:
            tick = pg.PlotDataItem([index - 0.02, index], [position, position],
                                   pen=pg.mkPen(axis_pen))
            plot.addItem(tick)
            label = pg.TextItem(_elide(text), color=colours.text, anchor=(1.0, 0.5),
                                fill=pg.mkBrush(*colours.legend_brush[:3], 190))
            label.setPos(index - 0.03, position)
            label.setZValue(6)
            plot.addItem(label)

    def _colours(self) -> list[tuple[int, ...]]:
        if self.colour_box.currentData() == "run" or not self.axes:
            return [run_colour(line.run_ids[0]) for line in self.lines]
        metric = np.array(self.axes[-1].positions)
        finite = metric[np.isfinite(metric)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        scale = (metric - low) / (high - low) if high > low else np.full_like(metric, 0.5)
        cmap = pg.colormap.get(COLORMAP)
        out = []
        for value in scale:
            if math.isnan(value):
                out.append((120, 120, 120))
            else:
                colour = cmap.map(0.1 + 0.8 * float(value), mode="qcolor")
                out.append((colour.red(), colour.green(), colour.blue()))
        return out

    def _paint(self) -> None:
        kept = set(brushed(self.axes, self.brushes, len(self.lines)))
        colours = self._colours()
        for index, item in enumerate(self._items):
            width = 3.5 if index == self._hovered else 2.2
            if index in kept:
                item.setPen(pg.mkPen(colours[index], width=width))
                item.setZValue(2 if index != self._hovered else 3)
            else:
                item.setPen(pg.mkPen(GREY, width=1.2 if index != self._hovered else 2.5))
                item.setZValue(1)

    # ------------------------------------------------------------ brushing

    def axis_near(self, x: float) -> int | None:
        index = round(x)
        if 0 <= index < len(self.axes) and abs(x - index) <= GRAB:
            return index
        return None

    def set_brush(self, index: int, start: float, end: float) -> None:
        """Brush axis `index` between two positions (0: bottom, 1: top)."""
        low, high = sorted((max(min(start, 1.0), 0.0), max(min(end, 1.0), 0.0)))
        self.brushes[index] = (low, high)
        self._draw_brush(index)
        self._paint()
        self.selection_changed.emit(self.selected_ids())

    def brush_values(self, key: str, low: float, high: float) -> None:
        """Brush the axis of `key` between two values (a numeric axis) or between two
        category labels (a categorical one)."""
        index = self.axis_keys().index(key)
        axis = self.axes[index]
        if axis.categorical:
            spots = dict((text, position) for position, text in axis.ticks)
            start, end = spots[format_value(low)], spots[format_value(high)]
            self.set_brush(index, start - 0.01, end + 0.01)
        else:
            self.set_brush(index, axis.to_position(low), axis.to_position(high))

    def clear_brush(self, index: int) -> None:
        if self.brushes.pop(index, None) is not None:
            item = self._brush_items.pop(index, None)
            if item is not None:
                self.plot.getPlotItem().removeItem(item)
            self._paint()
            self.selection_changed.emit(self.selected_ids())

    def clear_brushes(self) -> None:
        for index in list(self.brushes):
            self.clear_brush(index)

    def _draw_brush(self, index: int) -> None:
        low, high = self.brushes[index]
        item = self._brush_items.get(index)
        if item is None:
            item = QGraphicsRectItem()
            item.setPen(QPen(QColor(31, 119, 180), 0))
            item.setBrush(QBrush(QColor(*BRUSH_FILL)))
            item.setZValue(4)
            self.plot.getPlotItem().addItem(item)
            self._brush_items[index] = item
        item.setRect(QRectF(index - 0.07, low, 0.14, max(high - low, 0.01)))

    def selected_ids(self) -> list[int]:
        """Run ids of the lines inside every brush (every line's without a brush)."""
        return [run_id for i in brushed(self.axes, self.brushes, len(self.lines))
                for run_id in self.lines[i].run_ids]

    # ------------------------------------------------------------ hover

    def _hover(self, position: QPointF) -> None:
        if not self.axes or not self.plot.sceneBoundingRect().contains(position):
            return
        point = self.box.mapSceneToView(position)
        x = min(max(point.x(), 0.0), len(self.axes) - 1.0)
        left = min(int(math.floor(x)), max(len(self.axes) - 2, 0))
        frac = x - left
        _, pixel_y = self.box.viewPixelSize()
        best, distance = -1, 8 * pixel_y  # within 8 pixels
        for index in range(len(self.lines)):
            a = self.axes[left].positions[index]
            b = self.axes[min(left + 1, len(self.axes) - 1)].positions[index]
            if math.isnan(a) or math.isnan(b):
                continue
            gap = abs(a + (b - a) * frac - point.y())
            if gap < distance:
                best, distance = index, gap
        if best != self._hovered:
            self._hovered = best
            self._paint()
        self.hover_label.setText(self.describe(best) if best >= 0 else HOVER_HINT)

    def describe(self, index: int) -> str:
        """The hover text of a line: its runs and its value on every axis."""
        line = self.lines[index]
        colour = "#{:02x}{:02x}{:02x}".format(*run_colour(line.run_ids[0]))
        parts = [f"<span style='color:{colour}'><b>{line.label}</b></span>"]
        for axis in self.axes:
            value = line.values.get(axis.key, MISSING)
            text = "-" if value is MISSING else format_value(value)
            if axis is self.axes[-1] and value is not MISSING:
                text = f"{value:.2f}" + (f" ± {line.spread:.2f}" if line.spread else "")
            parts.append(f"{_short(axis.key)} <b>{text}</b>")
        return " · ".join(parts)

    # ------------------------------------------------------------ export

    def _export_dialog(self, fmt: str) -> None:
        label = "PNG image (*.png)" if fmt == "png" else "CSV table (*.csv)"
        export_with_dialog(self, "Export parallel coordinates", f"parallel-coordinates.{fmt}",
                           label, self.export)

    def export(self, path: str | Path) -> Path:
        """Write the chart (.png) or every line's values (.csv)."""
        import pyqtgraph.exporters as exporters

        target = Path(path)
        fmt = target.suffix.lower()
        if fmt == ".png":
            item = self.plot.getPlotItem()
            exporter = exporters.ImageExporter(item)
            exporter.parameters()["width"] = max(int(item.sceneBoundingRect().width()) * 2, 800)
            exporter.export(str(target))
        elif fmt == ".csv":
            with target.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["run_ids", *self.axis_keys(), "brushed"])
                kept = set(brushed(self.axes, self.brushes, len(self.lines)))
                for index, line in enumerate(self.lines):
                    writer.writerow([" ".join(map(str, line.run_ids)),
                                     *(format_value(v) if (v := line.values.get(k, MISSING))
                                       is not MISSING else "" for k in self.axis_keys()),
                                     index in kept])
        else:
            raise ValueError(f"unknown export format '{fmt}' (use .png or .csv)")
        if not target.is_file():
            raise OSError("the exporter wrote nothing")
        return target


def _short(key: str) -> str:
    """An axis title: the last two parts of a key path."""
    return ".".join(key.split(".")[-2:])


def _elide(text: str, room: int = 14) -> str:
    return text if len(text) <= room else text[: room - 1] + "…"
