"""The light/dark theme: View ▸ Theme switches the palette, the charts and the window's
style sheet, and the choice is saved in QSettings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyqtgraph as pg
import pytest
from PySide6.QtGui import QAction, QPalette
from PySide6.QtWidgets import QApplication

from kdstudio.gui import MainWindow
from kdstudio.gui.widgets.charts import ChartPanel
from kdstudio.gui.widgets.plots import corner_legend, white_plot
from kdstudio.gui.widgets.style import DARK_STYLE_COLOURS, LIGHT_STYLE_COLOURS
from kdstudio.gui.widgets.theme import DARK_CHARTS, SETTINGS_KEY, system_is_dark, theme
from tests.gui.conftest import find, settings_in


@pytest.fixture(autouse=True)
def _system_theme_after(qapp) -> Iterator[None]:
    yield
    theme().set_mode("system")  # the next test starts from the desktop's palette


def window_lightness() -> int:
    return QApplication.instance().palette().color(QPalette.ColorRole.Window).lightness()


def chart_colours_of(chart: ChartPanel) -> tuple[int, int, int]:
    """Lightness of the chart's background, its left axis pen and its tick text pen."""
    axis = chart.plot.getPlotItem().getAxis("left")
    return (chart.plot.backgroundBrush().color().lightness(), axis.pen().color().lightness(),
            axis.textPen().color().lightness())


def test_view_menu_switches_to_dark_and_back(window: MainWindow, tmp_path: Path) -> None:
    chart = window.findChildren(ChartPanel)[0]
    assert window_lightness() > 200
    background, _axis, text = chart_colours_of(chart)
    assert background == 255 and text < 100

    find(window, QAction, "themeDarkAction").trigger()
    assert window_lightness() < 100
    background, axis, text = chart_colours_of(chart)
    assert background < 60 and axis > 100 and text > 180
    assert DARK_STYLE_COLOURS["banner_background"] in window.styleSheet()
    assert window.settings.value(SETTINGS_KEY) == "dark"
    total = total_loss_curve(window)
    assert pg.mkPen(total.opts["pen"]).color().lightness() > 180  # not black on black

    find(window, QAction, "themeLightAction").trigger()
    assert window_lightness() > 200
    background, _axis, text = chart_colours_of(chart)
    assert background == 255 and text < 100
    assert LIGHT_STYLE_COLOURS["banner_background"] in window.styleSheet()
    assert window.settings.value(SETTINGS_KEY) == "light"
    assert pg.mkPen(total.opts["pen"]).color().lightness() < 60


def total_loss_curve(window: MainWindow) -> pg.PlotDataItem:
    curves = [chart.series["total"].item for chart in window.findChildren(ChartPanel)
              if "total" in chart.series]
    assert curves, "no chart has a total loss curve"
    return curves[0]


def test_saved_choice_is_applied_to_the_next_window(qtbot, window: MainWindow,
                                                    tmp_path: Path) -> None:
    find(window, QAction, "themeDarkAction").trigger()
    window.settings.sync()
    theme().set_mode("light")
    again = MainWindow(db_path=tmp_path / "history.db", settings=settings_in(tmp_path))
    qtbot.addWidget(again)
    assert find(again, QAction, "themeDarkAction").isChecked()
    assert window_lightness() < 100
    assert chart_colours_of(again.findChildren(ChartPanel)[0])[0] < 60


def test_corner_legend_and_plot_follow_a_change(qtbot) -> None:
    theme().set_mode("light")
    plot = white_plot("themedPlot", grid=True)
    qtbot.addWidget(plot)
    legend = corner_legend(plot.getPlotItem())
    plot.plot([0, 1], [0, 1], name="curve")
    assert legend.brush().color().lightness() > 200
    theme().set_mode("dark")
    assert plot.backgroundBrush().color().lightness() < 60
    assert legend.brush().color().lightness() < 60
    assert pg.mkColor(legend.labelTextColor()).lightness() > 180
    label = legend.items[0][1]
    assert pg.mkColor(DARK_CHARTS.legend_text).name() in label.item.toHtml()  # redrawn
    theme().set_mode("light")
    assert plot.backgroundBrush().color().lightness() == 255
    assert pg.mkColor(legend.labelTextColor()).lightness() < 100


def test_system_follows_the_desktop(window: MainWindow) -> None:
    find(window, QAction, "themeDarkAction").trigger()
    find(window, QAction, "themeSystemAction").trigger()
    assert window.settings.value(SETTINGS_KEY) == "system"
    assert theme().dark == system_is_dark()
    assert (window_lightness() < 100) == system_is_dark()


def test_phase_marker_labels_follow_a_change(qtbot) -> None:
    """A marker's label (drawn on a box of the chart's background) is recoloured with the
    chart, not left in the theme it was made in."""
    theme().set_mode("light")
    chart = ChartPanel("Loss", "step", "loss", "markerThemeChart")
    qtbot.addWidget(chart)
    chart.add_marker(10.0, "Student + KD")
    label = chart._markers[0].label
    assert label.fill.color().lightness() > 200 and label.color.lightness() < 100
    theme().set_mode("dark")
    assert label.fill.color().lightness() < 60 and label.color.lightness() > 180
    theme().set_mode("light")
    assert label.fill.color().lightness() > 200
