"""One chart of the live view: a pyqtgraph plot with a legend, values under the cursor,
log-y, optional smoothing and export to PNG, SVG or CSV.

Series are fed point by point (`append`) and drawn only when `redraw()` is called, which the
live view does from a GUI-thread timer, not once per training step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from kdstudio.gui.widgets.chart_export import export_png, export_svg
from kdstudio.gui.widgets.chart_legend import ChartLegend
from kdstudio.gui.widgets.elided_label import ElidedLabel
from kdstudio.gui.widgets.file_dialogs import export_with_dialog
from kdstudio.gui.widgets.marker_labels import arrange_marker_labels
from kdstudio.gui.widgets.smoothing import SmoothedSeries
from kdstudio.gui.widgets.theme import chart_colours, themed_ink, themed_plot

EXPORT_FORMATS = {"png": "PNG image (*.png)", "svg": "SVG drawing (*.svg)",
                  "csv": "CSV table (*.csv)"}


def compact_labels(values: Sequence[float], spacing: float) -> list[str]:
    """Tick labels that fit a narrow axis: when the largest is 10,000 or more, all are
    written in thousands (400k) or millions (2.5M); otherwise with as many decimals as the
    tick spacing needs."""
    largest = max((abs(v) for v in values), default=0.0)
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if largest >= 10 * scale or (scale == 1e6 and largest >= scale):
            return [f"{v / scale:g}{suffix}" if v else "0" for v in values]
    places = max(0, -math.floor(math.log10(spacing))) if spacing > 0 else 0
    return [f"{v:.{places}f}" for v in values]


def log_mantissas(decade_px: float) -> set[int]:
    """Which of 1..9 (times a power of ten) get a tick when a decade is this many pixels."""
    if decade_px >= 200:
        return set(range(1, 10))
    if decade_px >= 60:
        return {1, 2, 5}
    return {1}


class CompactAxis(pg.AxisItem):
    """A y axis whose tick labels stay short (thousands as k, millions as M), so a fixed
    axis width never lets them run into the axis title."""

    def logTickValues(self, minVal: float, maxVal: float, size: float,  # noqa: N802, N803
                      stdTicks: list) -> list:  # noqa: N803
        """pyqtgraph's log ticks, thinned where a decade is short: 1-9 need ~200 px a
        decade, 1, 2, 5 ~60 px; below that only the powers of ten are kept."""
        ticks = super().logTickValues(minVal, maxVal, size, stdTicks)
        decade_px = size / max(maxVal - minVal, 1e-9)
        kept = log_mantissas(decade_px)
        thinned = []
        for spacing, values in ticks:
            if spacing is None:
                values = [v for v in values
                          if round(10 ** (v - math.floor(v + 1e-9))) in kept]
            thinned.append((spacing, values))
        return thinned

    def tickStrings(self, values: list[float], scale: float, spacing: float  # noqa: N802
                    ) -> list[str]:
        if self.logMode:  # 10, 1, 0.1, 0.01, ... 1e-05 (pyqtgraph writes 10 as "10¹")
            return [f"{10.0 ** value * scale:.3g}" for value in values]
        return compact_labels([value * scale for value in values], spacing * scale)


def hover_text(values: dict[str, tuple[float, float]], color_of: Callable[[str], str]) -> str:
    """The read-out line of the values at the mouse: "x=8  <name> 0.9123 ...", each name in
    its curve's colour."""
    parts = [f"<span style='color:{color_of(name)}'>{name}</span> {y:.4g}"
             for name, (_x, y) in values.items()]
    return f"x={next(iter(values.values()))[0]:g}  " + "  ".join(parts)


def show_hover(label: QLabel, crosshair: pg.InfiniteLine, x: float,
               values: dict[str, tuple[float, float]], color_of: Callable[[str], str]) -> None:
    """The crosshair at `x` and the read-out of `values` in `label`; both hidden without
    values."""
    if not values:
        label.clear()
        crosshair.setVisible(False)
        return
    crosshair.setPos(x)
    crosshair.setVisible(True)
    label.setText(hover_text(values, color_of))


@dataclass
class Series:
    """One curve: raw points, their smoothed copy, and whether it changed since drawn."""

    name: str
    item: pg.PlotDataItem
    xs: list[float] = field(default_factory=list)
    values: SmoothedSeries = field(default_factory=SmoothedSeries)
    dirty: bool = False
    non_positive: int = 0  # values <= 0: a log axis cannot show them


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is >= value (value > 0)."""
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 5.0, 10.0):
        if step * power >= value * (1 - 1e-12):
            return step * power
    return 10.0 * power


def steady_range(values: np.ndarray, mode: str, log: bool) -> tuple[float, float] | None:
    """A y range that holds `values` and changes only in coarse steps (see ChartPanel);
    in log mode, in log10 units as pyqtgraph's log axes use, from the values above 0."""
    finite = values[np.isfinite(values)]
    if log:
        finite = finite[finite > 0]
    if not finite.size:
        return None
    low, high = float(finite.min()), float(finite.max())
    if mode == "fraction":
        bottom = max(math.floor(low * 10) / 10, 0.0)
        top = min(math.ceil(high * 10) / 10, 1.0)
        if not log:
            return bottom, max(top, bottom + 0.1)
        if bottom <= 0:  # below 0.1: down to the decade that holds the smallest value
            bottom = 10.0 ** math.floor(math.log10(low))
        top = max(top, high)
        if top <= bottom:
            top = bottom * 10 ** 0.1
        return math.log10(bottom), math.log10(top)
    if log:
        bottom, top = math.floor(math.log10(low)), math.ceil(math.log10(high))
        return float(bottom), float(max(top, bottom + 1))
    bottom = 0.0 if low >= 0 else -nice_ceiling(-low)
    top = nice_ceiling(high) if high > 0 else 1.0
    return bottom, top


class ChartPanel(QWidget):
    """A titled chart with its own tool row (log-y, export) and a hover read-out."""

    exported = Signal(str)

    def __init__(self, title: str, x_label: str, y_label: str, object_name: str,
                 smoothable: bool = False, legend: str | None = "top", y_range: str = "auto",
                 parent: QWidget | None = None) -> None:
        """`legend`: "top" (rows of entries above the plot) or "bottom" (below it), never
        over the data, each entry clicked to hide or show its curve; None for a single
        curve.
        `y_range`: "auto" (pyqtgraph follows every point), "steps" (whole decades in log-y,
        else 0 to a round number) or "fraction" (tenths within [0, 1]); the last two move
        the axis only when the data leave the current range, so it is rarely redrawn."""
        super().__init__(parent)
        self.title = title
        self.smoothable = smoothable
        self.y_mode = y_range
        self._y_range: tuple[float, float] | None = None
        self._x_range: tuple[float, float] | None = None
        self._user_zoomed = False
        self.series: dict[str, Series] = {}
        self._weight = 0.0
        self._markers: list[pg.InfiniteLine] = []
        self._marker_names: list[str] = []

        self.plot = pg.PlotWidget(axisItems={"left": CompactAxis("left")})
        self.plot.setObjectName(object_name)
        themed_plot(self.plot)  # background, axes and text follow the light/dark theme
        self.plot.setMinimumHeight(80)  # room for a 1024x700 window
        item = self.plot.getPlotItem()
        item.showGrid(x=False, y=True, alpha=0.25)  # x grid lines would double axis redraws
        item.setLabel("bottom", x_label)
        item.setLabel("left", y_label)
        item.getAxis("left").enableAutoSIPrefix(False)
        item.getAxis("left").setWidth(56)  # a fixed width: wider tick labels would resize the
        # plot area, and a resize redraws everything
        for side in ("left", "bottom"):
            # repaint an unchanged axis (labels, ticks, grid) from a pixmap, not by drawing
            # its text again: most of a live chart's cost otherwise
            item.getAxis(side).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        item.setMenuEnabled(False)
        item.setClipToView(True)
        item.setDownsampling(auto=True, mode="peak")
        self.legend_place = legend
        self.legend = ChartLegend() if legend is not None else None
        self.crosshair = pg.InfiniteLine(angle=90, movable=False,
                                         pen=pg.mkPen((120, 120, 120), style=Qt.PenStyle.DotLine))
        self.crosshair.setVisible(False)
        item.addItem(self.crosshair, ignoreBounds=True)
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)
        item.vb.sigRangeChangedManually.connect(self._on_manual_range)
        item.vb.sigXRangeChanged.connect(self.arrange_marker_labels)
        item.vb.sigResized.connect(self.arrange_marker_labels)

        self.title_label = ElidedLabel(title, bold=True)  # shrinks in a narrow window
        self.hover_label = QLabel()
        self.hover_label.setObjectName(f"{object_name}Hover")
        self.hover_label.setTextFormat(Qt.TextFormat.RichText)
        self.hover_label.setToolTip("Values of each curve at the cursor (nearest point)")
        self.hover_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.log_check = QCheckBox("log y")
        self.log_check.setToolTip("Logarithmic y axis")
        self.log_check.toggled.connect(self.set_log_y)
        self.log_note = QLabel()
        self.log_note.setObjectName(f"{object_name}LogNote")
        self.log_note.setStyleSheet("color: #a05a00;")
        self.log_note.setVisible(False)
        export = QToolButton()
        export.setText("Export")
        export.setToolTip("Save this chart as a PNG image, an SVG drawing or a CSV table")
        export.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(export)
        for fmt, label in EXPORT_FORMATS.items():
            menu.addAction(label.split(" (")[0], lambda f=fmt: self._export_dialog(f))
        export.setMenu(menu)

        tools = QHBoxLayout()
        tools.setContentsMargins(2, 0, 2, 0)
        tools.addWidget(self.title_label)
        tools.addWidget(self.hover_label, 1)
        tools.addWidget(self.log_note)
        tools.addWidget(self.log_check)
        tools.addWidget(export)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(tools)
        if self.legend is not None and legend == "top":
            layout.addWidget(self.legend)
        layout.addWidget(self.plot, 1)
        if self.legend is not None and legend != "top":
            layout.addWidget(self.legend)

    # ------------------------------------------------------------ data

    def add_series(self, name: str, color: str, dashed: bool = False,
                   symbol: str | None = None) -> Series:
        color = themed_ink(color)  # near-black curves turn near-white in the dark theme
        pen = pg.mkPen(color, width=2, style=Qt.PenStyle.DashLine if dashed else
                       Qt.PenStyle.SolidLine)
        item = self.plot.plot([], [], name=name, pen=pen, connect="finite",
                              symbol=symbol, symbolSize=6, symbolBrush=color, symbolPen=color)
        if self.legend is not None:
            self.legend.add(name, item)
        series = Series(name, item, values=SmoothedSeries(self._weight if self.smoothable
                                                          else 0.0))
        self.series[name] = series
        return series

    def append(self, name: str, x: float, y: float) -> None:
        series = self.series[name]
        series.xs.append(x)
        series.values.append(y)
        series.dirty = True
        if y <= 0:
            series.non_positive += 1

    def gap(self, name: str) -> None:
        """Break the line (a NaN point) so separate phases are not joined."""
        series = self.series[name]
        if series.xs and math.isfinite(series.values.raw[-1]):
            self.append(name, series.xs[-1], math.nan)

    def point_count(self) -> int:
        return sum(sum(1 for v in s.values.raw if math.isfinite(v)) for s in self.series.values())

    def clear(self) -> None:
        for series in self.series.values():
            self.plot.removeItem(series.item)
            if self.legend is not None:
                self.legend.remove(series.item)
        self.series = {}
        for marker in self._markers:
            self.plot.removeItem(marker)
        self._markers = []
        self._marker_names = []
        self.hover_label.clear()
        self.plot.getPlotItem().vb.enableAutoRange(x=True, y=self.y_mode == "auto")
        self._y_range = self._x_range = None
        self._user_zoomed = False

    def reset(self) -> None:
        """Empty every curve but keep the curves, markers and axes (cheap, unlike `clear`)."""
        for series in self.series.values():
            series.xs = []
            series.values.clear()
            series.dirty = True
            series.non_positive = 0
        self.place_markers([])
        self.hover_label.clear()
        self._user_zoomed = False

    def add_marker(self, x: float, name: str = "", labelled: bool = True) -> None:
        """A vertical line, e.g. where a phase starts; `name` labels it (with `labelled`)
        and is its tooltip. Labels are placed so that they never overlap
        (`marker_labels`)."""
        colours = chart_colours()  # the label on a box of the background: curves under it
        options = ({"label": name, "labelOpts": {  # do not run through its text
            "position": 0.97, "color": colours.text, "anchors": [(0, 0), (0, 0)],
            "fill": pg.mkBrush(*colours.legend_brush)}} if name and labelled else {})
        line = pg.InfiniteLine(pos=x, angle=90, movable=False,
                               pen=pg.mkPen((160, 160, 160), style=Qt.PenStyle.DashLine),
                               **options)
        line.setZValue(5)  # over the curves
        self.plot.addItem(line, ignoreBounds=True)
        self._markers.append(line)
        self._marker_names.append(name)

    def place_markers(self, positions: Sequence[float]) -> None:
        """Move the markers made by `add_marker`, in order; extra ones are hidden."""
        for index, marker in enumerate(self._markers):
            marker.setVisible(index < len(positions))
            if index < len(positions):
                marker.setPos(positions[index])
                name = self._marker_names[index]
                if name:
                    tip = f"{name}: from run step {math.floor(positions[index]) + 1}"
                    marker.setToolTip(tip)
                    if getattr(marker, "label", None) is not None:
                        marker.label.setToolTip(tip)
        self.arrange_marker_labels()

    def arrange_marker_labels(self, *_args: object) -> None:
        """Re-place the markers' labels for the plot's current size and x range."""
        arrange_marker_labels(self.plot.getPlotItem().vb, self._markers)

    def set_x_range(self, low: float, high: float) -> None:
        """Fix the x axis (e.g. to the whole run) from the next `redraw()` on: the axis is
        then not redrawn as points arrive, which is most of a live chart's drawing cost.
        `clear()` frees it again."""
        self._x_range = (low, high)

    def set_smoothing(self, weight: float) -> None:
        if not self.smoothable or weight == self._weight:
            return
        self._weight = weight
        for series in self.series.values():
            series.values.set_weight(weight)
            series.dirty = True
        self.redraw()

    def set_log_y(self, on: bool) -> None:
        """Switch the y axis to log10 (values <= 0 are then left out, and counted in a
        note beside the check box) or back; the axis range is chosen afresh either way."""
        self.plot.getPlotItem().setLogMode(y=on)
        if self.log_check.isChecked() != on:
            self.log_check.setChecked(on)
        self._y_range = None
        self._user_zoomed = False  # a range zoomed on the other scale means nothing here
        if self.y_mode == "auto":
            self.plot.getPlotItem().vb.enableAutoRange(y=True)
        self._steady_y()
        self._show_hidden_count()

    def hidden_by_log(self) -> int:
        """How many finite values (<= 0) the log axis cannot show; 0 on a linear axis."""
        if not self.log_check.isChecked():
            return 0
        return sum(series.non_positive for series in self.series.values())

    def _show_hidden_count(self) -> None:
        hidden = self.hidden_by_log()
        self.log_note.setVisible(hidden > 0)
        if hidden:
            self.log_note.setText(f"{hidden} ≤ 0 not shown")
            self.log_note.setToolTip(f"{hidden} values are 0 or below: a log axis cannot "
                                     "show them.\nTurn off log y to see every point.")

    def _on_manual_range(self, *_args: object) -> None:
        self._user_zoomed = True  # the user zoomed or panned: leave the axes to them

    def _steady_y(self) -> None:
        if self.y_mode == "auto" or self._user_zoomed:
            return
        values = [np.asarray(s.values.raw, dtype=float) for s in self.series.values()]
        target = steady_range(np.concatenate(values) if values else np.empty(0),
                              self.y_mode, self.log_check.isChecked())
        if target is not None and target != self._y_range:
            self._y_range = target
            view = self.plot.getPlotItem().vb
            view.enableAutoRange(y=False)
            view.setYRange(*target, padding=0.03)

    def redraw(self) -> bool:
        """Push changed series to their curves; True when something was drawn."""
        drawn = False
        if self._x_range is not None:
            view = self.plot.getPlotItem().vb
            view.enableAutoRange(x=False)
            view.setXRange(*self._x_range, padding=0.02)
            self._x_range = None
            drawn = True
        for series in self.series.values():
            if series.dirty:
                shown = series.values.smoothed if self.smoothable else series.values.raw
                series.item.setData(np.asarray(series.xs, dtype=float),
                                    np.asarray(shown, dtype=float))
                series.dirty = False
                drawn = True
        if drawn:
            self._steady_y()
            if self.log_check.isChecked():
                self._show_hidden_count()
        return drawn

    # ------------------------------------------------------------ hover

    def _on_mouse_moved(self, position: QPointF) -> None:
        view = self.plot.getPlotItem().vb
        if not self.plot.sceneBoundingRect().contains(position):
            self.crosshair.setVisible(False)
            return
        x = view.mapSceneToView(position).x()
        self.show_values_at(x)

    def values_at(self, x: float, within: float | None = None) -> dict[str, tuple[float, float]]:
        """Nearest point of each curve to `x`: name -> (x, y as drawn). Curves with no point
        closer than `within` (default: 2 % of the visible x range) are left out."""
        if within is None:
            low, high = self.plot.getPlotItem().vb.viewRange()[0]
            within = max((high - low) * 0.02, 0.5)
        found = {}
        for name, series in self.series.items():
            if not series.xs or not series.item.isVisible():
                continue
            xs = np.asarray(series.xs, dtype=float)
            shown = np.asarray(series.values.smoothed if self.smoothable else series.values.raw)
            finite = np.isfinite(shown)
            if not finite.any():
                continue
            xs, ys = xs[finite], shown[finite]
            index = int(np.argmin(np.abs(xs - x)))
            if abs(xs[index] - x) <= within:
                found[name] = (float(xs[index]), float(ys[index]))
        return found

    def show_values_at(self, x: float) -> None:
        show_hover(self.hover_label, self.crosshair, x, self.values_at(x),
                   lambda name: self.series[name].item.opts["pen"].color().name())

    # ------------------------------------------------------------ export

    def export_parts(self) -> list[QWidget]:
        """The widgets an exported image shows, top to bottom: the plot and its legend."""
        parts: list[QWidget] = [self.plot]
        if self.legend is not None and self.legend.entries:
            if self.legend_place == "top":
                parts.insert(0, self.legend)
            else:
                parts.append(self.legend)
        return parts

    def _export_dialog(self, fmt: str) -> None:
        name = self.title.lower().replace(" ", "-").replace("/", "-")
        export_with_dialog(self, f"Export {self.title}", f"{name}.{fmt}", EXPORT_FORMATS[fmt],
                           self.export)

    def export(self, path: str | Path, width: int | None = None) -> Path:
        """Write the chart to `path`; the suffix picks PNG, SVG or CSV. A PNG is `width`
        pixels wide (default: twice the chart's width, at least 1000) with its title."""
        import pyqtgraph.exporters as exporters

        target = Path(path)
        fmt = target.suffix.lower().lstrip(".")
        if fmt not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format '.{fmt}' (use .png, .svg or .csv)")
        self.redraw()
        self.crosshair.setVisible(False)
        parts = self.export_parts()
        if fmt == "png":
            export_png(parts, self.title, target, width or max(self.plot.width() * 2, 1000))
        elif fmt == "svg":
            export_svg(parts, self.title, target)
        else:
            exporters.CSVExporter(self.plot.getPlotItem()).export(str(target))
        if not target.is_file():
            raise OSError("the exporter wrote nothing")
        self.exported.emit(str(target))
        return target
