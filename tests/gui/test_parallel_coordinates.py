"""The Compare tab's parallel coordinates: axes are the config keys that vary plus the
metric, brushing keeps exactly the runs inside and filters the tables, a sweep's group
opens on it, and it exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdstudio.core.store import Store
from kdstudio.gui.compare.parallel_data import build_axis, varying_keys
from kdstudio.gui.compare.view import CompareView

# (temperature, kd_weight, seed, student test acc)
TRIALS = [(2.0, 0.5, 0, 0.90), (2.0, 0.5, 1, 0.92), (4.0, 0.5, 0, 0.93), (4.0, 0.9, 0, 0.95),
          (8.0, 0.9, 0, 0.91), (8.0, 0.9, 1, 0.89)]


def config(temperature: float, kd_weight: float, seed: int) -> dict:
    return {"name": f"T{temperature:g}-kd{kd_weight:g}-s{seed}", "seed": seed, "device": "cpu",
            "data": {"dataset": "digits", "batch_size": 64},
            "student": {"arch": "mlp", "params": {"hidden_sizes": [16]}},
            "distill": {"method": "kd", "temperature": temperature, "kd_weight": kd_weight}}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "history.db"
    with Store(path) as store:
        for temperature, kd_weight, seed, acc in TRIALS:
            run_id = store.create_run(config(temperature, kd_weight, seed), group_id="sweep-a")
            store.add_metrics(run_id, "student", 5, 1, {"val/acc": acc - 0.01})
            store.finish_run(run_id, "completed", student_test_acc=acc, baseline_test_acc=0.9,
                             kd_gain=acc - 0.9)
        other = store.create_run(config(4.0, 0.5, 5))
        store.finish_run(other, "completed", student_test_acc=0.5)
    return path


@pytest.fixture
def view(qtbot, db: Path) -> CompareView:
    widget = CompareView(db)
    qtbot.addWidget(widget)
    widget.resize(1600, 1000)
    widget.show()
    return widget


def test_opening_a_group_shows_its_runs_on_varying_axes_and_the_metric(view) -> None:
    assert view.show_group("sweep-a") == 6
    assert view.run_ids() == [1, 2, 3, 4, 5, 6]  # not run 7, which is in no group
    assert view.charts.currentWidget() is view.parallel
    assert view.parallel.axis_keys() == ["seed", "distill.temperature", "distill.kd_weight",
                                         "student_test_acc"]
    metric = view.parallel.axes[-1]
    accs = [acc * 100 for *_rest, acc in TRIALS]
    assert [metric.to_value(p) for p in metric.positions] == pytest.approx(accs)
    assert view.show_group("no-such-sweep") == 0
    assert "No run belongs to the group 'no-such-sweep'" in view.hint.text()


def test_brushing_axes_keeps_exactly_the_runs_inside_and_filters_the_tables(view) -> None:
    view.show_group("sweep-a")
    panel = view.parallel
    panel.brush_values("student_test_acc", 90.5, 93.5)
    assert panel.selected_ids() == [2, 3, 5]
    assert view.brushed_ids == [2, 3, 5]
    assert view.summary.rowCount() == 3
    assert [view.summary.item(r, 0).text().split()[0] for r in range(3)] == ["#2", "#3", "#5"]
    assert view.diff.columnCount() == 3
    panel.brush_values("distill.temperature", 4.0, 8.0)  # a second axis: both must hold
    assert panel.selected_ids() == [3, 5]
    assert "Tables: 2 of 6 runs" in view.hint.text()
    # brushing by positions, as a drag does: the lower half of the kd_weight axis
    index = panel.axis_keys().index("distill.kd_weight")
    panel.set_brush(index, 0.6, -0.2)
    assert panel.selected_ids() == [3]
    # kept lines keep their colour, the others turn grey
    pens = [item.opts["pen"].color().getRgb()[:3] for item in panel._items]
    assert pens[2] != (205, 205, 205) and all(p == (205, 205, 205) for i, p in enumerate(pens)
                                              if i != 2)
    panel.clear_brush(index)
    assert panel.selected_ids() == [3, 5]
    panel.clear_brushes()
    assert panel.selected_ids() == [1, 2, 3, 4, 5, 6]
    assert view.brushed_ids is None and view.summary.rowCount() == 6


def test_seed_groups_are_one_line_at_their_mean(view) -> None:
    view.show_group("sweep-a")
    view.group_seeds.setChecked(True)
    panel = view.parallel
    assert panel.axis_keys() == ["distill.temperature", "distill.kd_weight", "student_test_acc"]
    assert [line.run_ids for line in panel.lines] == [[1, 2], [3], [4], [5, 6]]
    assert panel.lines[0].values["student_test_acc"] == pytest.approx(91.0)
    assert panel.lines[0].spread == pytest.approx(1.0)
    panel.brush_values("student_test_acc", 90.5, 91.5)
    assert panel.selected_ids() == [1, 2]  # a kept group keeps all its seeds
    assert "± 1.00" in panel.describe(0)


def test_the_metric_axis_can_change_and_the_chart_exports(view, tmp_path: Path) -> None:
    view.show_group("sweep-a")
    view.parallel.metric_box.setCurrentIndex(view.parallel.metric_box.findData("kd_gain"))
    assert view.parallel.axis_keys()[-1] == "kd_gain"
    gains = [view.parallel.axes[-1].to_value(p) for p in view.parallel.axes[-1].positions]
    assert gains == pytest.approx([(acc - 0.9) * 100 for *_r, acc in TRIALS])
    png = view.parallel.export(tmp_path / "pc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    rows = (view.parallel.export(tmp_path / "pc.csv")).read_text().splitlines()
    assert rows[0] == "run_ids,seed,distill.temperature,distill.kd_weight,kd_gain,brushed"
    assert rows[1].startswith("1,0,2,0.5,") and len(rows) == 7


def test_axes_numeric_and_categorical() -> None:
    configs = [config(2.0, 0.5, 0), config(4.0, 0.5, 0) | {"device": "cuda"}]
    assert varying_keys(configs) == ["device", "distill.temperature"]  # never the name
    axis = build_axis("data.dataset", ["digits", "mnist1d", "digits", "cifar10"])
    assert axis.categorical
    assert [text for _p, text in axis.ticks] == ["cifar10", "digits", "mnist1d"]
    assert axis.positions == [0.5, 1.0, 0.5, 0.0]
    numeric = build_axis("optim.lr", [0.1, 0.01, None])
    assert not numeric.categorical and numeric.positions[0] > numeric.positions[1]
    assert numeric.positions[2] != numeric.positions[2]  # NaN: no value, a gap in the line


def test_hover_reads_the_line_under_the_cursor(view) -> None:
    view.show_group("sweep-a")
    panel = view.parallel
    axis = panel.axis_keys().index("distill.kd_weight")
    line = 3  # run 4: T4, kd 0.9, seed 0
    point = panel.box.mapViewToScene(
        pg_point(axis + 0.5, (panel.axes[axis].positions[line]
                              + panel.axes[axis + 1].positions[line]) / 2))
    panel._hover(point)
    assert panel._hovered == line
    text = panel.hover_label.text()
    assert "#4 T4-kd0.9-s0" in text and "kd_weight <b>0.9</b>" in text and "95.00" in text


def pg_point(x: float, y: float):
    from PySide6.QtCore import QPointF

    return QPointF(x, y)


def test_a_mouse_drag_along_an_axis_brushes_it_and_a_click_clears_it(view) -> None:
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    view.show_group("sweep-a")
    panel = view.parallel
    port = panel.plot.viewport()

    def at(x: float, y: float):
        return panel.plot.mapFromScene(panel.box.mapViewToScene(QPointF(x, y)))

    metric = len(panel.axes) - 1
    start, end = at(metric, 0.98), at(metric, 0.5)
    QTest.mousePress(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for step in range(1, 11):
        pos = QPointF(start + (end - start) * (step / 10))
        QApplication.sendEvent(port, QMouseEvent(
            QEvent.Type.MouseMove, pos, QPointF(port.mapToGlobal(pos)), Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    QTest.mouseRelease(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    low, high = panel.brushes[metric]
    assert low == pytest.approx(0.5, abs=0.02) and high == pytest.approx(0.98, abs=0.02)
    inside = [i + 1 for i, p in enumerate(panel.axes[metric].positions) if low <= p <= high]
    assert panel.selected_ids() == inside and 0 < len(inside) < 6
    QTest.mouseClick(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     at(metric, 0.2))
    assert panel.brushes == {} and panel.selected_ids() == [1, 2, 3, 4, 5, 6]
