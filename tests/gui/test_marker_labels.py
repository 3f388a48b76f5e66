"""Phase markers of the loss chart: their labels never overlap, however short a phase,
and each marker names its phase in a tooltip."""

from __future__ import annotations

import itertools

import pytest
from PySide6.QtWidgets import QApplication

from kdstudio.gui.widgets.charts import ChartPanel
from kdstudio.gui.widgets.marker_labels import label_rows

NAMES = ("Teacher", "Student alone", "Student + KD")


def test_label_rows_stack_only_what_would_overlap():
    assert label_rows([(0, 50), (100, 150), (200, 260)]) == [0, 0, 0]
    assert label_rows([(0, 50), (20, 90), (40, 120)]) == [0, 1, 2]
    assert label_rows([(0, 50), (20, 90), (60, 120)]) == [0, 1, 0]
    assert label_rows([(0, 50), (53, 90)], gap=6) == [0, 1]  # closer than the gap


def _shown_labels(chart: ChartPanel) -> list:
    return [m.label for m in chart._markers if m.isVisible() and m.label.isVisible()]


@pytest.fixture
def loss_chart(qtbot) -> ChartPanel:
    chart = ChartPanel("Loss per step", "run step", "loss", "lossPlot", True)
    qtbot.addWidget(chart)
    chart.resize(500, 300)
    chart.show()
    for name in NAMES:
        chart.add_marker(0.0, name)
    chart.add_series("total", "#222222")
    for step in range(1, 401):
        chart.append("total", step, 1.0)
    chart.set_x_range(0, 400)
    chart.redraw()
    qtbot.waitExposed(chart)
    return chart


@pytest.mark.parametrize("starts", [(0.5, 0.5, 0.5), (0.5, 3.5, 6.5), (0.5, 10.5, 395.5),
                                    (0.5, 200.5, 204.5)])
def test_labels_of_short_phases_do_not_overlap(loss_chart, starts):
    loss_chart.place_markers(starts)
    QApplication.processEvents()
    labels = _shown_labels(loss_chart)
    assert len(labels) == 3  # three rows fit a 300 px chart: none has to be dropped
    rects = [label.sceneBoundingRect() for label in labels]
    for a, b in itertools.combinations(rects, 2):
        assert not a.intersects(b), (a, b)
    assert all(label.fill.color().alpha() >= 200 for label in labels)  # curves pass under
    plot_area = loss_chart.plot.getPlotItem().vb.sceneBoundingRect()
    for rect in rects:  # each inside the plot, none run off its right edge
        assert plot_area.contains(rect), (rect, plot_area)
    tips = [m.toolTip() for m in loss_chart._markers]
    assert tips == [f"{name}: from run step {int(x) + 1}"
                    for name, x in zip(NAMES, starts, strict=True)]


def test_spread_out_phases_keep_one_row_and_a_resize_restacks(loss_chart, qtbot):
    loss_chart.place_markers((0.5, 130.5, 260.5))
    QApplication.processEvents()
    tops = {round(label.sceneBoundingRect().top()) for label in _shown_labels(loss_chart)}
    assert len(tops) == 1
    loss_chart.resize(200, 300)  # narrower: the labels now run into each other
    qtbot.waitUntil(lambda: len({round(label.sceneBoundingRect().top())
                                 for label in _shown_labels(loss_chart)}) > 1)
    rects = [label.sceneBoundingRect() for label in _shown_labels(loss_chart)]
    for a, b in itertools.combinations(rects, 2):
        assert not a.intersects(b)


def test_a_label_without_room_is_hidden_but_named_in_the_tooltip(loss_chart):
    loss_chart.resize(500, 110)  # the top half of the plot holds at most one row
    QApplication.processEvents()
    loss_chart.place_markers((0.5, 1.5, 2.5))
    QApplication.processEvents()
    shown = _shown_labels(loss_chart)
    assert 1 <= len(shown) < 3
    assert [m.toolTip().split(":")[0] for m in loss_chart._markers] == list(NAMES)
