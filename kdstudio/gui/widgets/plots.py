"""Small pyqtgraph helpers the views share: a plot in the theme's colours and a legend in
its corner."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg

from kdstudio.gui.widgets.theme import chart_colours, themed_plot


def white_plot(object_name: str, grid: bool = False, **options: Any) -> pg.PlotWidget:
    """A PlotWidget in the theme's colours (white in the light theme) named `object_name`
    (tests and styles find it); with `grid`, faint grid lines on both axes."""
    plot = pg.PlotWidget(**options)
    plot.setObjectName(object_name)
    themed_plot(plot)
    if grid:
        plot.getPlotItem().showGrid(x=True, y=True, alpha=0.25)
    return plot


def corner_legend(item: pg.PlotItem, text_size: str = "9pt",
                  text_color: Any = "theme", offset: tuple[int, int] = (-8, -8),
                  opacity: int = 210, **options: Any) -> pg.LegendItem:
    """A legend inside the plot's corner (bottom right by default) on a nearly opaque
    box of the theme's background, so curves under it stay readable; `text_color` "theme"
    follows the theme (a theme change re-colours it with the plot)."""
    colours = chart_colours()
    if text_color is not None:
        options["labelTextColor"] = colours.legend_text if text_color == "theme" else text_color
    legend = item.addLegend(offset=offset, labelTextSize=text_size, **options)
    legend.setBrush(pg.mkBrush(*colours.legend_brush[:3], opacity))
    return legend
