"""The compare view's Pareto scatter: student size (parameters, MB or measured latency)
against test accuracy, with baselines hollow, teachers as stars and the front dashed."""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from kdstudio.gui.compare.data import mean_and_std, pareto_front
from kdstudio.gui.compare.tables import run_label
from kdstudio.gui.widgets.colours import run_colour
from kdstudio.gui.widgets.plots import white_plot

SIZE_AXES = {"parameters": "Parameters", "MB": "Size (MB)",
             "latency": "CPU latency per batch (ms, measured at export)"}
MARKERS = (("student", "o", True), ("baseline", "o", False), ("teacher", "star", True))
SPOT_SIZES = {"student": 10, "baseline": 16, "teacher": 16}  # a baseline rings its student
DRAW_ORDER = {"baseline": 0, "student": 1, "teacher": 2}  # a student's dot over its ring
KEY = "● student + KD · ○ student alone · ★ teacher."
LEAST_ACCURACY_SPAN = 1.0  # percentage points the y axis shows at least
LEAST_SIZE_SPAN = 0.5  # decades the x axis shows at least


def compact_number(value: float) -> str:
    """A size as people write it: 950, 15.2k, 1.2M, 3.4G (3 significant figures at most)."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


TICK_SETS = ((1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 5), (1, 3), (1,))  # richest first
TICK_GAP_PX = 8  # the least room between two tick labels


def log_ticks(low: float, high: float, size: float, width_of: Callable[[float], float],
              gap: float = TICK_GAP_PX) -> list[float]:
    """Tick values (log10 units) between `low` and `high` on an axis `size` px long whose
    labels, `width_of(value)` px wide and centred on their tick, stay `gap` apart: the
    richest of 1-9, 1-2-5, 1-3 or 1 times each power of ten that leaves no two labels
    closer, else every second, third, ... power of ten."""
    if high <= low or size <= 0:
        return []
    per_unit = size / (high - low)

    def spaced(values: list[float]) -> bool:
        ends = [((v - low) * per_unit - width_of(v) / 2, (v - low) * per_unit + width_of(v) / 2)
                for v in values]
        return all(left >= end + gap for (_l, end), (left, _r) in pairwise(ends))

    decades = range(math.floor(low), math.ceil(high) + 1)
    for mantissas in TICK_SETS:
        values = [d + math.log10(m) for d in decades for m in mantissas]
        values = [v for v in values if low - 1e-9 <= v <= high + 1e-9]
        if spaced(values):
            return values
    powers = [float(d) for d in decades if low - 1e-9 <= d <= high + 1e-9]
    for every in range(2, len(powers) + 1):
        if spaced(powers[::every]):
            return powers[::every]
    return powers[:1]


class CompactLogAxis(pg.AxisItem):
    """A log axis whose ticks read 1k, 15.2k, 1.2M instead of 1.521e+04, never so many
    that two labels touch (`log_ticks`)."""

    def logTickValues(self, minVal: float, maxVal: float, size: float,  # noqa: N802, N803
                      stdTicks: list) -> list:  # noqa: N803
        metrics = QFontMetricsF(self.style["tickFont"] or self.font())
        values = log_ticks(minVal, maxVal, size,
                           lambda v: metrics.horizontalAdvance(compact_number(10 ** v)))
        powers = [v for v in values if abs(v - round(v)) < 1e-9]
        return [(1.0, powers), (None, [v for v in values if v not in powers])]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        if not self.logMode:
            return super().tickStrings(values, scale, spacing)
        return [compact_number(10 ** v) for v in values]


def at_least(values: list[float], span: float) -> tuple[float, float]:
    """The range of `values`, widened about its middle to `span` if narrower."""
    low, high = min(values), max(values)
    if high - low >= span:
        return low, high
    middle = (low + high) / 2
    return middle - span / 2, middle + span / 2


def model_size(run: dict[str, Any], who: str, axis: str,
               latency: dict[int, dict[str, Any]]) -> float | None:
    """The size of the run's teacher or student on this axis (None: not known)."""
    if axis == "parameters":
        value = run.get(f"{who}_params")
    elif axis == "MB":
        value = run.get(f"{who}_size_mb")
    else:
        value = latency.get(run["id"], {}).get(f"{who}_latency_ms")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def label_rows(labels: list[tuple[float, float, str, Any]], near_x: float,
               near_y: float) -> list[int]:
    """A stacking row per label: labels closer than (near_x, near_y) to an earlier one move
    up a row so that no two share a place."""
    rows: list[int] = []
    for i, (x, y, _text, _colour) in enumerate(labels):
        taken = {rows[j] for j, (ox, oy, _t, _c) in enumerate(labels[:i])
                 if abs(ox - x) < near_x and abs(oy - y) < near_y * (1 + rows[j])}
        row = 0
        while row in taken:
            row += 1
        rows.append(row)
    return rows


def place_labels(plot: pg.PlotItem, labels: list[tuple[float, float, str, Any]]
                 ) -> list[pg.TextItem]:
    """Run labels right of and above their points, stacked where points crowd."""
    xs = [label[0] for label in labels]
    ys = [label[1] for label in labels]
    span_x = (max(xs) - min(xs)) if len(xs) > 1 else 1.0
    span_y = (max(ys) - min(ys)) if len(ys) > 1 else 1.0
    items = []
    for (x, y, text, colour), row in zip(labels, label_rows(labels, 0.12 * (span_x or 1.0),
                                                           0.08 * (span_y or 1.0)),
                                         strict=True):
        item = pg.TextItem(text, color=colour, anchor=(-0.2, 1.1 + row))
        item.setPos(x, y)
        plot.addItem(item)
        items.append(item)
    return items


class ParetoPanel(QWidget):
    """The size-axis choice, the scatter and a note; `draw` shows groups of runs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.points: list[dict[str, Any]] = []
        self.run_labels: list[pg.TextItem] = []
        self.size_axis = QComboBox()
        self.size_axis.setObjectName("compareSizeAxis")
        self.size_axis.setToolTip("Size shown on the Pareto x axis; latency only for runs "
                                  "whose student was exported (that measures it)")
        for key in SIZE_AXES:
            self.size_axis.addItem(key, key)
        self.plot = white_plot("comparePareto", grid=True)
        item = self.plot.getPlotItem()
        item.setAxisItems({"bottom": CompactLogAxis("bottom")})
        item.setLabel("left", "Test accuracy (%)")
        item.setLogMode(x=True, y=False)
        self.note = QLabel()
        self.note.setObjectName("compareParetoNote")
        self.note.setWordWrap(True)
        self.note.setToolTip("Filled circle: the distilled student (student + KD); hollow ring: "
                             "the same student trained alone; star: the teacher.\nHover a "
                             "point for its run, accuracy and size.")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("<b>Size vs test accuracy</b>  x:"))
        top.addWidget(self.size_axis)
        top.addStretch(1)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.note)

    def axis(self) -> str:
        return self.size_axis.currentData()

    def draw(self, groups: list[list[dict[str, Any]]],
             latency: dict[int, dict[str, Any]]) -> None:
        """Students (circles), baselines (hollow) and teachers (stars): size vs test acc;
        `latency`: the measured latencies by run id (for the latency axis)."""
        plot = self.plot.getPlotItem()
        plot.clear()
        self.points = []
        axis = self.axis()
        plot.setLabel("bottom", SIZE_AXES[axis])
        missing = 0
        spots: list[dict[str, Any]] = []
        labels: list[tuple[float, float, str, tuple[int, int, int]]] = []
        for group in groups:
            lead = group[0]
            colour = run_colour(lead["id"])
            for who, symbol, filled in MARKERS:
                size_key = "teacher" if who == "teacher" else "student"
                sizes = [model_size(r, size_key, axis, latency) for r in group]
                accs = [r.get(f"{who}_test_acc") for r in group]
                pairs = [(s, a) for s, a in zip(sizes, accs, strict=True)
                         if s is not None and a is not None]
                if not pairs:
                    if who == "student" and any(a is not None for a in accs):
                        missing += 1
                    continue
                x = float(np.mean([p[0] for p in pairs]))
                y, spread = mean_and_std([p[1] for p in pairs])
                self.points.append({"run_id": lead["id"], "who": who, "x": x,
                                    "y": y, "std": spread, "runs": len(pairs)})
                text = f"{run_label(lead)} · {who}: {y:.2%} test, {compact_number(x)} {axis}"
                if len(pairs) > 1:
                    text += f" (mean of {len(pairs)} seeds, ± {spread * 100:.2f} points)"
                spots.append({"pos": (np.log10(x), y * 100), "symbol": symbol,
                              "size": SPOT_SIZES[who],
                              "pen": pg.mkPen(colour, width=2), "data": text,
                              "brush": pg.mkBrush(*colour) if filled
                              else pg.mkBrush(255, 255, 255)})
                if len(pairs) > 1 and spread:
                    plot.addItem(pg.ErrorBarItem(x=np.array([np.log10(x)]),
                                                 y=np.array([y * 100]),
                                                 height=np.array([2 * spread * 100]),
                                                 pen=pg.mkPen(colour)))
                if who == "student":
                    labels.append((np.log10(x), y * 100, f"#{lead['id']}", colour))
        # ScatterPlotItem is not log-aware: its positions are given as log10(size) already.
        order = [DRAW_ORDER[p["who"]] for p in self.points]
        spots = [spot for _order, _i, spot in sorted(zip(order, range(len(spots)), spots,
                                                         strict=True))]
        plot.addItem(pg.ScatterPlotItem(spots=spots, hoverable=True,
                                        tip=lambda x, y, data: data))
        self.run_labels = place_labels(plot, labels)
        self._draw_front(plot)
        self._show_all(plot)
        notes = [KEY]
        if missing and axis == "latency":
            notes.append(f"{missing} run(s) have no measured latency: export their student "
                         "to time it.")
        elif missing:
            notes.append(f"{missing} run(s) lack a size for this axis.")
        notes.append("Dashed line: Pareto front (no other model is both smaller and more "
                     "accurate).")
        self.note.setText(" ".join(notes))

    def _show_all(self, plot: pg.PlotItem) -> None:
        """A view of every point with room right of them for their labels; at least
        LEAST_ACCURACY_SPAN points by LEAST_SIZE_SPAN decades, so equal values do not
        stretch the axes into ticks such as 100.0000000000002."""
        if not self.points:
            return
        xs = [float(np.log10(p["x"])) for p in self.points]
        ys = [p["y"] * 100 for p in self.points]
        (x_low, x_high), (y_low, y_high) = (at_least(xs, LEAST_SIZE_SPAN),
                                            at_least(ys, LEAST_ACCURACY_SPAN))
        x_span, y_span = x_high - x_low, y_high - y_low
        plot.getViewBox().setRange(xRange=(x_low - 0.08 * x_span, x_high + 0.2 * x_span),
                                   yRange=(y_low - 0.1 * y_span, y_high + 0.15 * y_span),
                                   padding=0)

    def _draw_front(self, plot: pg.PlotItem) -> None:
        points = [(p["x"], p["y"]) for p in self.points]
        if len(points) < 2:
            return
        front = pareto_front(points)
        xs = [points[i][0] for i in front]  # raw sizes: a PlotDataItem takes the log itself
        ys = [points[i][1] * 100 for i in front]
        line = pg.PlotDataItem(xs, ys, pen=pg.mkPen((110, 110, 110), width=1,
                                                    style=Qt.PenStyle.DashLine))
        line.setZValue(-1)
        plot.addItem(line)

    def front_members(self) -> list[tuple[int, str]]:
        """(run id, who) of the points on the Pareto front."""
        points = [(p["x"], p["y"]) for p in self.points]
        return [(self.points[i]["run_id"], self.points[i]["who"]) for i in pareto_front(points)]
