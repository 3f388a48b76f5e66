"""Compare view: overlaid curves (one per run, stable colours), smoothing, log-y, x modes,
config diff with "differences only", summary, Pareto scatter, seed groups as mean ± std;
and the Qt-free helpers behind it."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest

from kdstudio.core.store import Store
from kdstudio.gui.compare.data import (
    build_series,
    config_diff,
    group_by_seed,
    pareto_front,
)
from kdstudio.gui.compare.view import CompareView
from kdstudio.gui.widgets.colours import run_colour
from kdstudio.gui.widgets.smoothing import debiased_ema

VAL = {  # val/acc per epoch of the distilled student, by run name
    "a": [0.50, 0.70, 0.80],
    "b": [0.40, 0.60, 0.90],
    "c": [0.55, 0.65, 0.75],
    "a-seed1": [0.60, 0.74, 0.84],
}
STEPS_PER_EPOCH = 4


def config(name: str, seed: int = 0, temperature: float = 4.0, hidden: int = 16) -> dict:
    return {"name": name, "seed": seed, "device": "cpu",
            "data": {"dataset": "digits", "batch_size": 64},
            "teacher": {"arch": "cnn", "params": {"channels": [8]}},
            "student": {"arch": "mlp", "params": {"hidden_sizes": [hidden]}},
            "distill": {"method": "kd", "temperature": temperature}}


def add_run(store: Store, name: str, test_acc: float, student_params: int, **kw) -> int:
    run_id = store.create_run(config(name, **kw), student_params=student_params,
                              teacher_params=20_000, student_size_mb=student_params * 4e-6,
                              teacher_size_mb=0.08, compression=20_000 / student_params)
    for phase, scale in (("teacher", 1.1), ("student", 1.0)):
        step = 0
        for epoch, acc in enumerate(VAL[name], start=1):
            for _ in range(STEPS_PER_EPOCH):
                step += 1
                store.add_metrics(run_id, phase, step, epoch,
                                  {"loss/total": 2.0 / step, "lr": 0.1})
            store.add_metrics(run_id, phase, step, epoch,
                              {"val/acc": min(acc * scale, 1.0), "val/loss": 1.0 - acc})
    store.finish_run(run_id, "completed", student_test_acc=test_acc,
                     baseline_test_acc=test_acc - 0.02, teacher_test_acc=0.97,
                     kd_gain=0.02, student_best_val_acc=max(VAL[name]))
    return run_id


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "history.db"
    with Store(path) as store:
        add_run(store, "a", 0.82, 1_000, seed=0)
        add_run(store, "b", 0.88, 4_000, temperature=2.0, hidden=64)
        add_run(store, "c", 0.80, 2_000, hidden=32)
        add_run(store, "a-seed1", 0.86, 1_000, seed=1)
    return path


@pytest.fixture
def view(qtbot, db: Path) -> CompareView:
    widget = CompareView(db)
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    return widget


def test_three_runs_draw_three_curves_for_every_metric(view: CompareView) -> None:
    view.set_runs([1, 2, 3])
    metrics = [view.metric_box.itemText(i) for i in range(view.metric_box.count())]
    assert metrics[0] == "val/acc"
    assert set(metrics) == {"val/acc", "val/loss", "loss/total", "lr"}
    for metric in metrics:
        view.metric_box.setCurrentText(metric)
        items = view.curve_items()
        assert len(items) == 3, metric
        pens = {item.opts["pen"].color().getRgb()[:3] for item in items}
        assert pens == {run_colour(1), run_colour(2), run_colour(3)}
    view.metric_box.setCurrentText("val/acc")
    curve = view.curves["#2 b"]
    assert list(curve.yData) == pytest.approx(VAL["b"])
    assert list(curve.xData) == [4, 8, 12]  # x = step of the student phase


def test_ticking_runs_in_the_list_compares_them(view: CompareView) -> None:
    from PySide6.QtCore import Qt

    items = {view.run_list.item(i).data(Qt.ItemDataRole.UserRole): view.run_list.item(i)
             for i in range(view.run_list.count())}
    items[3].setCheckState(Qt.CheckState.Checked)
    items[1].setCheckState(Qt.CheckState.Checked)
    assert view.run_ids() == [3, 1]  # in the order they were ticked
    assert len(view.curve_items()) == 2
    assert view.hint.text() == ""
    items[1].setCheckState(Qt.CheckState.Unchecked)
    assert view.run_ids() == [3] and "alone" in view.hint.text()
    items[3].setCheckState(Qt.CheckState.Unchecked)
    assert view.run_ids() == [] and "two or more" in view.hint.text()
    assert view.curve_items() == []


def test_differences_only_shows_only_keys_that_differ(view: CompareView) -> None:
    view.set_runs([1, 2, 3])
    view.diff_only.setChecked(True)
    assert view.diff_keys() == ["name", "student.params.hidden_sizes", "distill.temperature"]
    row = view.diff_keys().index("distill.temperature")
    assert [view.diff.item(row, c).text() for c in range(3)] == ["4", "2", "4"]
    view.diff_only.setChecked(False)
    keys = view.diff_keys()
    assert {"seed", "data.dataset", "teacher.arch", "distill.method"} <= set(keys)
    assert len(keys) > 3


def test_x_axis_modes_smoothing_and_log_y(view: CompareView) -> None:
    view.set_runs([1, 2])
    view.metric_box.setCurrentText("loss/total")
    view.x_axis.setCurrentIndex(view.x_axis.findData("epoch"))
    x = view.curves["#1 a"].xData
    assert x[0] == pytest.approx(1 / STEPS_PER_EPOCH) and x[-1] == pytest.approx(3.0)
    view.x_axis.setCurrentIndex(view.x_axis.findData("wall time"))
    x = view.curves["#1 a"].xData
    assert x.min() >= 0 and np.all(np.diff(x) >= 0)
    view.x_axis.setCurrentIndex(view.x_axis.findData("step"))
    raw = list(view.curves["#1 a"].yData)
    view.smoothing.setValue(60)
    smoothed = list(view.curves["#1 a"].yData)
    assert smoothed == pytest.approx(debiased_ema(raw, 0.6))
    assert smoothed != pytest.approx(raw)
    view.log_y.setChecked(True)
    assert view.plot.getPlotItem().ctrl.logYCheck.isChecked()


def test_all_phases_run_end_to_end(view: CompareView) -> None:
    view.set_runs([1, 2])
    view.phase.setCurrentIndex(view.phase.findData("all"))
    curve = view.curves["#1 a"]
    assert len(curve.yData) == 6  # teacher's three epochs, then the student's
    assert list(curve.xData) == [4, 8, 12, 16, 20, 24]


def test_summary_has_best_and_last_values(view: CompareView) -> None:
    view.set_runs([1, 2, 3])
    texts = [[view.summary.item(r, c).text() for c in range(view.summary.columnCount())]
             for r in range(view.summary.rowCount())]
    assert [row[0] for row in texts] == ["#1 a", "#2 b", "#3 c"]
    assert texts[1][2:5] == ["90.00%", "90.00%", "88.00%"]  # best, last, student test
    view.metric_box.setCurrentText("val/loss")
    assert view.summary.item(0, 2).text() == "0.2"  # lowest loss is best
    assert view.summary.item(0, 3).text() == "0.2"
    assert view.summary.horizontalHeaderItem(2).text() == "Best val/loss"


def test_seed_siblings_grouped_as_mean_and_std(view: CompareView) -> None:
    view.set_runs([1, 2, 4])
    assert len(view.curve_items()) == 3
    view.group_seeds.setChecked(True)
    assert sorted(view.curves) == ["#1 a ×2 seeds", "#2 b"]
    mean = view.curves["#1 a ×2 seeds"].yData
    expected = (np.array(VAL["a"]) + np.array(VAL["a-seed1"])) / 2
    assert mean == pytest.approx(expected)
    assert len(view.bands) == 1
    assert view.summary.rowCount() == 2
    assert view.summary.item(0, 1).text() == "0, 1"
    assert view.summary.item(0, 4).text() == "84.00% ± 2.00"  # test acc 82 % and 86 %
    group = [p for p in view.pareto_points if p["run_id"] == 1 and p["who"] == "student"]
    assert group[0]["y"] == pytest.approx(0.84) and group[0]["std"] == pytest.approx(0.02)


def test_pareto_scatter_marks_teachers_and_finds_the_front(view: CompareView, db: Path,
                                                           tmp_path: Path) -> None:
    view.set_runs([1, 2, 3])
    whos = sorted((p["run_id"], p["who"]) for p in view.pareto_points)
    assert whos == [(r, w) for r in (1, 2, 3) for w in ("baseline", "student", "teacher")]
    student = next(p for p in view.pareto_points if p["run_id"] == 2 and p["who"] == "student")
    assert (student["x"], student["y"]) == (4_000, pytest.approx(0.88))
    front = view.front_members()
    assert (1, "student") in front and (2, "student") in front and (1, "teacher") in front
    assert (3, "student") not in front  # larger than run 1 and less accurate
    view.size_axis.setCurrentIndex(view.size_axis.findData("MB"))
    student = next(p for p in view.pareto_points if p["run_id"] == 2 and p["who"] == "student")
    assert student["x"] == pytest.approx(0.016)
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("x")
    with Store(db) as store:
        store.add_artifact(2, "export", card, "markdown",
                           {"student_latency_ms": 0.25, "teacher_latency_ms": 1.5})
    view.size_axis.setCurrentIndex(view.size_axis.findData("latency"))
    measured = sorted((p["run_id"], p["who"], p["x"]) for p in view.pareto_points)
    assert measured == [(2, "baseline", 0.25), (2, "student", 0.25), (2, "teacher", 1.5)]
    assert "2 run(s) have no measured latency" in view.pareto_note.text()


# ---------------------------------------------------------------- helpers without Qt


def test_build_series_fractional_epochs_and_phase_filter() -> None:
    rows = [(7, "student", s, (s - 1) // 2 + 1, float(s), 100.0 + s) for s in range(1, 7)]
    rows += [(7, "teacher", 1, 1, 9.0, 99.0)]
    (series,) = build_series(rows, "epoch", "student", {7: None})
    assert list(series.x) == pytest.approx([0.5, 1, 1.5, 2, 2.5, 3])
    (series,) = build_series(rows, "wall time", "student", {7: None})
    assert series.x[0] == 0.0 and series.x[-1] == 5.0
    assert len(build_series(rows, "step", "baseline", {})) == 0
    with pytest.raises(ValueError, match="x axis"):
        build_series(rows, "time", "student", {})


def test_pareto_front_and_config_diff_and_groups() -> None:
    points = [(100, 0.8), (200, 0.79), (50, 0.7), (400, 0.9), (100, 0.6)]
    assert pareto_front(points) == [2, 0, 3]
    diff = config_diff([{"a": {"b": 1, "c": [1]}}, {"a": {"b": 2, "c": [1]}, "d": "x"}],
                       differences_only=True)
    assert diff.keys == ["a.b", "d"] and diff.values == [["1", "2"], ["-", "x"]]
    runs = [{"id": 1, "config": {"seed": 0, "x": 1}}, {"id": 2, "config": {"seed": 5, "x": 1}},
            {"id": 3, "config": {"seed": 0, "x": 2}}]
    assert [[r["id"] for r in g] for g in group_by_seed(runs)] == [[1, 2], [3]]
    assert run_colour(3) == run_colour(3) and run_colour(3) != run_colour(4)
    assert len({run_colour(i) for i in range(1, 31)}) == 30
    assert all(not math.isnan(v) for v in run_colour(12))


def test_deleted_runs_leave_the_comparison(view: CompareView, db: Path) -> None:
    view.set_runs([1, 2, 3])
    with Store(db) as store:
        store.delete_run(2)
    view.reload_run_list()
    assert view.run_ids() == [1, 3]
    assert sorted(view.curves) == ["#1 a", "#3 c"]
    assert view.run_list.count() == 3


def test_seed_band_stays_finite_and_near_the_data_under_log_y(qtbot, db: Path) -> None:
    """Linear mean - std reaches zero here (0 vs 1e-3); the band is taken in log space."""
    values = {1: [1.0, 0.01, 0.0], 4: [3.0, 0.5, 1e-3]}
    with Store(db) as store:
        for run_id, ys in values.items():
            for epoch, y in enumerate(ys, start=1):
                store.add_metrics(run_id, "student", epoch * STEPS_PER_EPOCH, epoch,
                                  {"val/spread": y})
    view = CompareView(db)
    qtbot.addWidget(view)
    view.set_runs([1, 4])
    view.group_seeds.setChecked(True)
    view.metric_box.setCurrentText("val/spread")
    assert min(view.overlay.band_edges[0][0]) <= 0  # log10 of the linear band: -inf
    view.log_y.setChecked(True)
    data = np.array(list(values.values()))
    positive = data[data > 0]
    for edge, drawn in zip(view.overlay.band_edges[0][::-1], view.bands[0].curves, strict=True):
        ys = np.asarray(edge, dtype=float)
        assert np.asarray(drawn.yData) == pytest.approx(np.log10(ys))  # view space: log10
        assert np.isfinite(ys).all()
        assert ys.min() >= positive.min() / 10 and ys.max() <= positive.max() * 10
    mean = view.curves["#1 a ×2 seeds"].yData
    assert mean[:2] == pytest.approx(np.sqrt(data[0] * data[1])[:2])  # geometric mean


def test_pareto_ticks_read_as_compact_counts(view: CompareView) -> None:
    from kdstudio.gui.compare.pareto import compact_number

    assert [compact_number(v) for v in (950, 15_210, 1_234_567)] == ["950", "15.2k", "1.23M"]
    view.set_runs([1, 2, 3])
    axis = view.pareto_panel.plot.getPlotItem().getAxis("bottom")
    assert axis.tickStrings([3.0, 4.0, 6.0], 1.0, 1.0) == ["1k", "10k", "1M"]


def test_hover_shows_each_curves_value_and_export_writes_files(view: CompareView,
                                                                tmp_path: Path) -> None:
    view.set_runs([1, 2])
    panel = view.curve_panel
    panel.show_values_at(8.4)  # student val/acc at step 8: epoch 2
    text = panel.hover.text()
    assert "x=8" in text and "#1 a</span> 0.7" in text and "#2 b</span> 0.6" in text
    rows = (tmp_path / "c.csv")
    panel.export(rows)
    lines = rows.read_text().splitlines()
    assert lines[0] == "curve,x,y" and "#2 b,12,0.9" in lines and len(lines) == 7
    for suffix in ("png", "svg"):
        written = panel.export(tmp_path / f"c.{suffix}")
        assert written.stat().st_size > 1000
    svg = (tmp_path / "c.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "Compare: " in svg  # titled
    assert "non-scaling-stroke" not in svg.split("<polyline", 1)[-1].split(">", 1)[0]
    with pytest.raises(ValueError, match="unknown export format"):
        panel.export(tmp_path / "c.txt")


def test_crowded_run_labels_stack_instead_of_overlapping() -> None:
    from kdstudio.gui.compare.pareto import label_rows

    labels = [(3.0, 80.0, "#1", None), (3.01, 80.2, "#2", None), (3.02, 80.1, "#3", None),
              (5.0, 80.0, "#4", None)]
    assert label_rows(labels, 0.1, 1.0) == [0, 1, 2, 0]


def test_log_ticks_thin_out_until_no_two_labels_touch() -> None:
    from kdstudio.gui.compare.pareto import log_ticks

    def width(_value: float) -> float:
        return 30.0

    rich = log_ticks(2.0, 4.0, 2000, width)  # 1000 px a decade: every mantissa fits
    assert len(rich) == 19 and rich[0] == 2.0 and rich[-1] == 4.0
    assert log_ticks(2.0, 4.0, 400, width) == pytest.approx(  # 200 px: 1, 2, 5
        [2.0, 2.30103, 2.69897, 3.0, 3.30103, 3.69897, 4.0], abs=1e-5)
    assert log_ticks(2.0, 6.0, 240, width) == [2.0, 3.0, 4.0, 5.0, 6.0]  # 60 px a decade
    assert log_ticks(2.0, 8.0, 150, width) == [2.0, 4.0, 6.0, 8.0]  # 25 px: every other
    assert log_ticks(2.0, 4.0, 0, width) == []


@pytest.mark.parametrize("size", [(470, 330), (760, 470)])  # its room at 1024x700, 1600x1000
@pytest.mark.parametrize(("params", "teacher", "expected"), [
    ((900, 1_000, 15_200, 120_000), 1.5e6, {"1k", "10k", "100k", "1M"}),
    ((600, 900, 2_000, 15_200), 20_000, {"1k", "2k", "5k", "10k"})])
def test_pareto_parameter_ticks_never_overlap(qtbot, size: tuple[int, int],
                                              params: tuple[int, ...], teacher: float,
                                              expected: set[str]) -> None:
    from PySide6.QtGui import QImage, QPainter

    from kdstudio.gui.compare.pareto import ParetoPanel

    panel = ParetoPanel()
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    runs = [{"id": i + 1, "name": f"r{i}", "student_params": count, "teacher_params": teacher,
             "student_test_acc": 0.8 + i / 100, "teacher_test_acc": 0.95}
            for i, count in enumerate(params)]
    panel.draw([[run] for run in runs], {})
    qtbot.waitExposed(panel)
    axis = panel.plot.getPlotItem().getAxis("bottom")
    qtbot.waitUntil(lambda: axis.range[1] > math.log10(teacher))  # the points are in view
    image = QImage(10, 10, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        _axis, _ticks, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    shown = [text for _rect, _flags, text in texts]
    assert expected <= set(shown), shown
    rects = sorted((rect for rect, _flags, _text in texts), key=lambda r: r.left())
    for left, right in itertools.pairwise(rects):
        assert left.right() + 4 <= right.left(), shown


def test_equal_accuracies_keep_readable_axes_and_both_markers_visible(qtbot) -> None:
    from kdstudio.gui.compare.pareto import KEY, ParetoPanel

    panel = ParetoPanel()
    qtbot.addWidget(panel)
    panel.resize(470, 330)
    panel.show()
    runs = [{"id": i + 1, "name": f"r{i}", "student_params": count, "teacher_params": 420,
             "student_test_acc": 1.0, "baseline_test_acc": 1.0, "teacher_test_acc": 1.0}
            for i, count in enumerate((108, 836))]
    panel.draw([[run] for run in runs], {})
    (x_low, x_high), (y_low, y_high) = panel.plot.getPlotItem().getViewBox().viewRange()
    assert y_high - y_low >= 1.0 and y_low < 100 < y_high  # not 100 ± 1e-13
    assert x_low < math.log10(108) and x_high > math.log10(836) + 0.1  # room for "#2"
    left = panel.plot.getPlotItem().getAxis("left")
    shown = [s for _spacing, values in left.tickValues(y_low, y_high, 250)
             for s in left.tickStrings(values, 1.0, 0.2)]
    assert shown and all(len(s) <= 6 for s in shown), shown
    scatter = next(i for i in panel.plot.getPlotItem().items
                   if isinstance(i, pg.ScatterPlotItem))
    sizes = {spot.data().split(" · ")[1].split(":")[0]: spot.size() for spot in scatter.points()}
    assert sizes["baseline"] > sizes["student"]  # the ring shows round the dot it shares
    drawn = [spot.data().split(" · ")[1].split(":")[0] for spot in scatter.points()]
    assert drawn.index("student") > drawn.index("baseline")  # the dot on top
    assert panel.note.text().startswith(KEY)  # the marker key is off the plot
