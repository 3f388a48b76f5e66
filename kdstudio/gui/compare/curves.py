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


def band_bounds(series: list[Series], log_y: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, mean, lower and upper edge of a seed group's ± std band.

    Under `log_y` the band is the geometric mean ×/÷ 10**std(log10 y), so it stays positive
    and finite; non-positive values are left out of the log statistics."""
    x, mean, std = mean_std(series)
    if not log_y:
        return x, mean, mean - std, mean + std
    length = len(x)
    ys = np.array([s.y[:length] for s in series], dtype=float)
    positive = ys[ys > 0]
    floor = float(positive.min()) if positive.size else 1e-12
    logs = np.log10(np.where(ys > 0, ys, floor))
    log_mean, log_std = logs.mean(axis=0), logs.std(axis=0)
    return (x, 10 ** log_mean, 10 ** (log_mean - log_std), 10 ** (log_mean + log_std))


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
        self.band_edges: list[tuple[np.ndarray, np.ndarray]] = []  # (lower, upper), data space
        self._band_items: list[Any] = []
        self._pool: list[pg.PlotDataItem] = []

    def draw(self, groups: list[list[dict[str, Any]]], series: list[Series], phase: str,
             weight: float, log_y: bool = False) -> None:
        """Draw `series` for these groups of runs (one curve each, or a group's mean ± std
        band); `phase` is the one chosen, `weight` the smoothing weight (0: none); under
        `log_y` a group's mean and band are computed from log10 values."""
        plot = self.plot.getPlotItem()
        for item in self._band_items:
            plot.removeItem(item)
        self._band_items.clear()
        self.bands.clear()
        self.band_edges.clear()
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
                    x, mean, lower, upper = band_bounds(
                        [s for s in members if s.phase == part], log_y)
                    if weight:
                        mean = np.asarray(debiased_ema(mean, weight))
                    name = f"{run_label(lead)} ×{len(group)} seeds"
                    name += "" if part in ("all", phase) else f" · {part}"
                    self._add_band(x, lower, upper, colour, log_y)
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

    def _add_band(self, x: np.ndarray, lower_y: np.ndarray, upper_y: np.ndarray,
                  colour: tuple[int, int, int], log_y: bool = False) -> None:
        """The band between two edges given in data space; its curves are drawn in view
        space (log10 under `log_y`), as FillBetweenItem's curves are not log-aware."""
        to_view = np.log10 if log_y else np.asarray
        upper = pg.PlotCurveItem(x, to_view(upper_y), pen=pg.mkPen(None))
        lower = pg.PlotCurveItem(x, to_view(lower_y), pen=pg.mkPen(None))
        band = pg.FillBetweenItem(upper, lower, brush=pg.mkBrush(*colour, 50))
        self.plot.getPlotItem().addItem(band)
        self._band_items.append(band)
        self.bands.append(band)
        self.band_edges.append((np.asarray(lower_y, dtype=float),
                                np.asarray(upper_y, dtype=float)))
