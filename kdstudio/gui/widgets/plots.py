"""Small pyqtgraph helpers the views share: a white plot and a legend in its corner."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg

LEGEND_TEXT = (30, 30, 30)


def white_plot(object_name: str, grid: bool = False, **options: Any) -> pg.PlotWidget:
    """A PlotWidget on a white background named `object_name` (tests and styles find it);
    with `grid`, light grid lines on both axes."""
    plot = pg.PlotWidget(**options)
    plot.setObjectName(object_name)
    plot.setBackground("w")
    if grid:
        plot.getPlotItem().showGrid(x=True, y=True, alpha=0.25)
    return plot


def corner_legend(item: pg.PlotItem, text_size: str = "9pt",
                  text_color: Any = LEGEND_TEXT, offset: tuple[int, int] = (-8, -8),
                  opacity: int = 210, **options: Any) -> pg.LegendItem:
    """A legend inside the plot's corner (bottom right by default) on a nearly opaque
    white box, so curves under it stay readable."""
    if text_color is not None:
        options["labelTextColor"] = text_color
    legend = item.addLegend(offset=offset, labelTextSize=text_size, **options)
    legend.setBrush(pg.mkBrush(255, 255, 255, opacity))
    return legend
