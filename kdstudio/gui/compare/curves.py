"""The compare view's curve plot: one metric of every run overlaid, or a seed group's mean
with a ± std band, in each run's own colour."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from kdstudio.gui.compare.data import Series, mean_std
from kdstudio.gui.compare.tables import run_label
from kdstudio.gui.widgets.colours import run_colour
from kdstudio.gui.widgets.plots import corner_legend, white_plot
from kdstudio.gui.widgets.smoothing import debiased_ema

PHASE_STYLES = {"teacher": Qt.PenStyle.DashLine, "baseline": Qt.PenStyle.DotLine}
X_LABELS = {"step": "step", "epoch": "epoch", "wall time": "seconds since the run started"}


class CurveOverlay:
    """The plot (`plot`) and what it shows: `curves` by legend name and `bands`.

    Curve items are pooled and updated with setData: creating and adding pyqtgraph items
    (and legend rows) costs more than drawing them."""

    def __init__(self) -> None:
        self.plot = white_plot("compareCurves", grid=True)
        item = self.plot.getPlotItem()
        item.setClipToView(True)
        item.setDownsampling(auto=True, mode="peak")
        item.getAxis("left").enableAutoSIPrefix(False)
        self.legend = corner_legend(item)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.bands: list[pg.FillBetweenItem] = []
        self._band_items: list[Any] = []
        self._pool: list[pg.PlotDataItem] = []

    def draw(self, groups: list[list[dict[str, Any]]], series: list[Series], phase: str,
             weight: float) -> None:
        """Draw `series` for these groups of runs (one curve each, or a group's mean ± std
        band); `phase` is the one chosen, `weight` the smoothing weight (0: none)."""
        plot = self.plot.getPlotItem()
        for item in self._band_items:
            plot.removeItem(item)
        self._band_items.clear()
        self.bands.clear()
        self.curves.clear()
        by_run: dict[int, list[Series]] = {}
        for one in series:
            by_run.setdefault(one.run_id, []).append(one)
        for group in groups:
            lead = group[0]
            colour = run_colour(lead["id"])
            if len(group) > 1:
                members = [s for run in group for s in by_run.get(run["id"], [])]
                for part in dict.fromkeys(s.phase for s in members):
                    x, mean, std = mean_std([s for s in members if s.phase == part])
                    mean = np.asarray(debiased_ema(mean, weight)) if weight else mean
                    name = f"{run_label(lead)} ×{len(group)} seeds"
                    name += "" if part in ("all", phase) else f" · {part}"
                    self._add_band(x, mean, std, colour)
                    self._add_curve(name, x, mean, colour, PHASE_STYLES.get(part))
                continue
            for one in by_run.get(lead["id"], []):
                y = np.asarray(debiased_ema(one.y, weight)) if weight else one.y
                name = run_label(lead)
                if one.phase not in ("all", phase):
                    name += f" · {one.phase}"
                self._add_curve(name, one.x, y, colour, PHASE_STYLES.get(one.phase))
        for item in self._pool[len(self.curves):]:
            item.setData([], [])
            item.hide()
        self._sync_legend()

    def set_axes(self, metric: str, x_mode: str, log_y: bool) -> None:
        plot = self.plot.getPlotItem()
        plot.setLabel("left", metric)
        plot.setLabel("bottom", X_LABELS[x_mode])
        plot.setLogMode(x=False, y=log_y)

    def _add_curve(self, name: str, x: np.ndarray, y: np.ndarray,
                   colour: tuple[int, int, int], style: Qt.PenStyle | None) -> None:
        pen = pg.mkPen(colour, width=2, style=style or Qt.PenStyle.SolidLine)
        key = name
        suffix = 2
        while key in self.curves:
            key = f"{name} ({suffix})"
            suffix += 1
        index = len(self.curves)
        if index == len(self._pool):
            item = pg.PlotDataItem()
            self.plot.getPlotItem().addItem(item)
            self._pool.append(item)
        item = self._pool[index]
        item.setData(x, y, pen=pen, name=key)
        item.show()
        self.curves[key] = item

    def _sync_legend(self) -> None:
        """One legend row per drawn curve; rows are relabelled rather than rebuilt."""
        names = list(self.curves)
        items = list(self.curves.values())
        if [sample.item for sample, _ in self.legend.items] != items:
            self.legend.clear()
            for item, name in zip(items, names, strict=True):
                self.legend.addItem(item, name)
            return
        for (sample, label), name in zip(self.legend.items, names, strict=True):
            if label.text != name:
                label.setText(name)
            sample.update()

    def _add_band(self, x: np.ndarray, mean: np.ndarray, std: np.ndarray,
                  colour: tuple[int, int, int]) -> None:
        upper = pg.PlotDataItem(x, mean + std, pen=pg.mkPen(None))
        lower = pg.PlotDataItem(x, mean - std, pen=pg.mkPen(None))
        band = pg.FillBetweenItem(upper, lower, brush=pg.mkBrush(*colour, 50))
        plot = self.plot.getPlotItem()
        for item in (upper, lower, band):
            plot.addItem(item)
            self._band_items.append(item)
        self.bands.append(band)
