"""Charts: values under the cursor, log-y, export to PNG, SVG and CSV; the EMA smoothing."""

from __future__ import annotations

import csv
import math

import pytest

from kdstudio.gui.widgets.charts import ChartPanel
from kdstudio.gui.widgets.smoothing import SmoothedSeries, debiased_ema


def test_debiased_ema_matches_the_tensorboard_formula():
    # w = 0.5: s1 = 0.5 -> 0.5 / 0.5 = 1; s2 = 0.25 + 1 = 1.25 -> / 0.75; s3 = 0.625 + 1.5
    assert debiased_ema([1, 2, 3], 0.5) == pytest.approx([1.0, 1.25 / 0.75, 2.125 / 0.875])
    assert debiased_ema([4, 4, 4], 0.9) == pytest.approx([4, 4, 4])  # no pull towards 0
    assert debiased_ema([1, 2, 3], 0.0) == [1, 2, 3]
    smoothed = debiased_ema([1, math.nan, 5, 7], 0.5)
    assert math.isnan(smoothed[1]) and smoothed[2] == 5  # restarts after a gap
    with pytest.raises(ValueError, match="smoothing weight"):
        SmoothedSeries(1.0)


def test_changing_the_weight_recomputes_every_point():
    series = SmoothedSeries(0.0)
    series.extend([1.0, 3.0, 2.0])
    series.set_weight(0.5)
    assert series.smoothed == pytest.approx(debiased_ema([1.0, 3.0, 2.0], 0.5))
    assert series.raw == [1.0, 3.0, 2.0]


@pytest.fixture
def chart(qtbot) -> ChartPanel:
    panel = ChartPanel("Loss per step", "run step", "loss", "lossPlot", smoothable=True)
    qtbot.addWidget(panel)
    panel.resize(500, 300)
    panel.show()
    panel.add_series("total", "#222222")
    panel.add_series("CE", "#1f77b4")
    for step in range(1, 21):
        panel.append("total", step, 2.0 / step)
        panel.append("CE", step, 1.0 / step)
    panel.gap("total")
    panel.set_smoothing(0.0)
    panel.redraw()
    return panel


def test_values_under_the_cursor(chart):
    values = chart.values_at(4.2)
    assert values["total"] == pytest.approx((4.0, 0.5))
    assert values["CE"] == pytest.approx((4.0, 0.25))
    chart.show_values_at(4.2)
    assert chart.crosshair.isVisible()
    assert "x=4 " in chart.hover_label.text()
    assert "total</span> 0.5" in chart.hover_label.text()
    assert chart.point_count() == 40
    chart.add_series("KD", "#ff7f0e")
    chart.append("KD", 30, 1.0)  # a curve that starts later is not read at x = 4
    assert "KD" not in chart.values_at(4.2, within=1.0)
    assert chart.values_at(29.5, within=1.0)["KD"] == (30.0, 1.0)


def test_log_y_switches_the_axis(chart):
    chart.log_check.setChecked(True)
    assert chart.plot.getPlotItem().ctrl.logYCheck.isChecked()
    chart.set_log_y(False)
    assert not chart.log_check.isChecked()


def test_export_png_svg_csv(chart, tmp_path):
    png = chart.export(tmp_path / "loss.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = chart.export(tmp_path / "loss.svg").read_text()
    assert "<svg" in svg and svg.count("<path") + svg.count("<polyline") >= 2
    rows = list(csv.reader(chart.export(tmp_path / "loss.csv").open()))
    assert rows[0][:2] == ["total_x", "total_y"] and rows[0][2:4] == ["CE_x", "CE_y"]
    assert float(rows[4][0]) == 4.0 and float(rows[4][1]) == pytest.approx(0.5)
    assert float(rows[4][3]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="unknown export format"):
        chart.export(tmp_path / "loss.gif")


def test_steady_y_ranges_move_in_coarse_steps():
    import numpy as np

    from kdstudio.gui.widgets.charts import nice_ceiling, steady_range

    assert [nice_ceiling(v) for v in (0.7, 1.0, 1.3, 3.0, 7.5, 420.0)] == [
        1.0, 1.0, 2.0, 5.0, 10.0, 500.0]
    losses = np.array([2.3, 0.9, 0.04, math.nan, 0.003])
    assert steady_range(losses, "steps", log=True) == (-3.0, 1.0)  # decades 10^-3 .. 10^1
    assert steady_range(losses, "steps", log=False) == (0.0, 5.0)
    assert steady_range(np.array([0.56, 0.93, 0.99]), "fraction", log=False) == (0.5, 1.0)
    assert steady_range(np.array([0.56, 0.93, 0.99]), "fraction", log=False) == \
        steady_range(np.array([0.58, 0.97]), "fraction", log=False)  # no change: no redraw
    assert steady_range(np.array([math.nan]), "steps", log=False) is None


def test_the_chart_follows_the_data_until_the_user_zooms(chart):
    chart.y_mode = "steps"
    chart.append("total", 21, 7.0)
    chart.redraw()
    low, high = chart.plot.getPlotItem().vb.viewRange()[1]
    assert low <= 0.0 and 10.0 <= high < 11.0  # 0 .. nice ceiling of 7, plus padding
    chart._on_manual_range()
    chart.append("total", 22, 70.0)
    chart.redraw()
    assert chart.plot.getPlotItem().vb.viewRange()[1] == [low, high]


def test_large_tick_labels_stay_short_and_consistent() -> None:
    from kdstudio.gui.widgets.charts import CompactAxis, compact_labels

    assert compact_labels([0, 100_000, 400_000], 100_000) == ["0", "100k", "400k"]
    assert compact_labels([0, 5_000, 10_000, 15_000], 5_000) == ["0", "5k", "10k", "15k"]
    assert compact_labels([0, 2_500_000, 5_000_000], 2_500_000) == ["0", "2.5M", "5M"]
    assert compact_labels([0, 2_000, 4_000], 2_000) == ["0", "2000", "4000"]  # fit as they are
    assert compact_labels([0.01, 0.02], 0.01) == ["0.01", "0.02"]
    axis = CompactAxis("left")
    assert axis.tickStrings([0, 200_000], 1.0, 200_000) == ["0", "200k"]


def test_log_y_on_a_chart_of_fractions_keeps_its_curves_in_view(qtbot):
    panel = ChartPanel("Accuracy per epoch", "epoch", "accuracy", "accuracyPlot",
                       legend="bottom", y_range="fraction")
    qtbot.addWidget(panel)
    panel.resize(500, 300)
    panel.show()
    panel.add_series("student val", "#1f77b4", symbol="o")
    accuracies = [0.5, 0.6, 0.7, 0.8, 0.9]
    for epoch, value in enumerate(accuracies, 1):
        panel.append("student val", epoch, value)
    panel.redraw()
    panel.log_check.setChecked(True)
    curve = panel.series["student val"].item
    xs, ys = curve.getData()  # as drawn: log10 of the values
    assert list(xs) == [1, 2, 3, 4, 5]
    assert ys == pytest.approx([math.log10(v) for v in accuracies])
    low, high = panel.plot.getPlotItem().vb.viewRange()[1]
    assert -0.35 < low < math.log10(0.5) and math.log10(0.9) < high < 0.0  # 0.5 .. 0.9
    assert curve.isVisible() and len(curve.curve.getData()[1]) == 5
    assert low < min(ys) and max(ys) < high  # every point inside the view, none clipped
    assert not panel.log_note.isVisibleTo(panel)
    panel.append("student val", 6, 0.0)  # a fraction of 0 has no logarithm: counted, not shown
    panel.redraw()
    assert panel.hidden_by_log() == 1 and panel.log_note.isVisibleTo(panel)
    assert "1 ≤ 0" in panel.log_note.text()
    assert panel.plot.getPlotItem().vb.viewRange()[1] == [low, high]
    panel.log_check.setChecked(False)
    low, high = panel.plot.getPlotItem().vb.viewRange()[1]
    assert -0.05 < low < 0.0 and 0.9 < high < 0.95  # 0 .. 0.9 on the linear axis
    assert not panel.log_note.isVisibleTo(panel)


def test_log_y_after_a_zoom_and_on_an_auto_ranged_chart(qtbot):
    import numpy as np

    from kdstudio.gui.widgets.charts import steady_range

    assert steady_range(np.array([0.03, 0.4]), "fraction", log=True) == pytest.approx(
        (-2.0, math.log10(0.4)))
    panel = ChartPanel("LR", "step", "lr", "lrPlot", legend=None)  # y_range="auto"
    qtbot.addWidget(panel)
    panel.resize(400, 250)
    panel.show()
    panel.add_series("lr", "#6a3d9a")
    for step in range(1, 11):
        panel.append("lr", step, 10.0 ** -step)
    panel.redraw()
    panel._on_manual_range()  # the user zoomed on the linear scale
    panel.set_log_y(True)
    panel.plot.getPlotItem().vb.updateAutoRange()
    low, high = panel.plot.getPlotItem().vb.viewRange()[1]
    assert -11 < low <= -10 and -1 <= high < 0  # the data's decades, not the old zoom


def test_clicking_a_legend_entry_hides_and_shows_its_curve(chart, qtbot):
    from PySide6.QtCore import Qt

    entry = chart.legend.entry("CE")
    curve = chart.series["CE"].item
    assert entry is not None and curve.isVisible()
    qtbot.mouseClick(entry, Qt.MouseButton.LeftButton)
    assert not curve.isVisible() and chart.series["total"].item.isVisible()
    assert "CE" not in chart.values_at(4.2)  # a hidden curve is not read under the cursor
    qtbot.mouseClick(entry, Qt.MouseButton.LeftButton)
    assert curve.isVisible() and "CE" in chart.values_at(4.2)


def test_legends_stay_outside_the_data_area_at_1024x700(qtbot):
    from PySide6.QtCore import QRect

    from kdstudio.gui.run.live_charts import LiveCharts

    charts = LiveCharts()
    qtbot.addWidget(charts)
    charts.begin(["teacher", "baseline", "student"], ["ce", "kd", "feature"],
                 ["temperature", "kd_weight"])
    charts.resize(1024, 700)
    charts.show()
    qtbot.waitExposed(charts)
    for panel in (charts.loss_chart, charts.accuracy_chart, charts.agreement_chart,
                  charts.lr_chart):
        legend = panel.legend
        assert legend is not None and legend.isVisible() and legend.entries
        view = panel.plot.getPlotItem().vb
        data_area = panel.plot.mapFromScene(view.sceneBoundingRect()).boundingRect()
        data_area.translate(panel.plot.pos())
        assert data_area.height() > 60, panel.title
        assert not legend.geometry().intersects(data_area), panel.title
        for entry in legend.entries:  # every entry whole, none cut off at the edge
            assert QRect(legend.rect()).contains(entry.geometry()), (panel.title, entry.name)
    assert len(charts.accuracy_chart.legend.entries) == 6
    assert charts.accuracy_chart.legend.columns_for(charts.accuracy_chart.width()) < 6


def test_log_ticks_are_thinned_where_a_decade_is_short() -> None:
    from kdstudio.gui.widgets.charts import CompactAxis

    axis = CompactAxis("left")
    axis.setLogMode(False, True)

    def minor_mantissas(size: float) -> list[int]:
        ticks = axis.logTickValues(-3.0, 1.0, size, [(1.0, [-3.0, -2.0, -1.0, 0.0, 1.0])])
        minor = next(values for spacing, values in ticks if spacing is None)
        return sorted({round(10 ** (v - math.floor(v + 1e-9))) for v in minor})

    assert minor_mantissas(1000) == list(range(1, 10))  # 250 px a decade: every tick
    assert minor_mantissas(400) == [1, 2, 5]  # 100 px a decade
    assert minor_mantissas(120) == [1]  # 30 px a decade: the powers of ten only
    assert axis.tickStrings([1.0, 0.0, -1.0, -3.0, math.log10(0.5)], 1.0, 1.0) == [
        "10", "1", "0.1", "0.001", "0.5"]
