"""The dark-knowledge view on real runs: its maps and bars hold what the stored models give,
the temperature slider and the example picker re-render the soft targets, and runs without
models get a message instead of a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from kdstudio.core.analysis import dark_knowledge
from kdstudio.core.engine import run
from kdstudio.core.store import Store
from kdstudio.gui.insight.dark_knowledge import DarkKnowledgeView
from kdstudio.gui.insight.example import slider_temperature, slider_value
from kdstudio.gui.insight.panels import MatrixImage
from kdstudio.gui.widgets.colours import PHASE_LABELS
from tests.gui.conftest import set_tiny_run
from tests.helpers import tiny_config

LOAD_MS = 20_000


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """One completed tiny run (teacher, baseline, distilled student) with 4 classes."""
    db = tmp_path_factory.mktemp("dk") / "history.db"
    config = tiny_config()
    config.data.params = {**config.data.params, "samples": 320, "classes": 4}
    with Store(db) as store:
        result = run(config, store)
    assert result.status == "completed"
    return db, result.run_id


def _image_of(view: DarkKnowledgeView, name: str) -> np.ndarray:
    """The matrix the named heat map draws (its one MatrixImage's values)."""
    plot = view.findChild(pg.PlotWidget, name)
    assert plot is not None, f"no plot named {name}"
    images = [item for item in plot.getPlotItem().items if isinstance(item, MatrixImage)]
    assert len(images) == 1
    return images[0].values


def _pixels(image: MatrixImage) -> np.ndarray:
    """The RGBA bytes of the QImage the item paints (rows x columns x 4)."""
    qimage = image.qimage.convertToFormat(QImage.Format.Format_RGBA8888)
    rows, columns = qimage.height(), qimage.width()
    return np.frombuffer(qimage.constBits(), np.uint8, rows * columns * 4).reshape(
        rows, columns, 4).copy()


def _bars_in(view: DarkKnowledgeView, name: str) -> list[pg.BarGraphItem]:
    plot = view.findChild(pg.PlotWidget, name)
    assert plot is not None, f"no plot named {name}"
    return [item for item in plot.getPlotItem().items if isinstance(item, pg.BarGraphItem)]


def _loaded_view(qtbot, db: Path, run_id: int) -> DarkKnowledgeView:
    view = DarkKnowledgeView()
    qtbot.addWidget(view)
    view.resize(1200, 760)
    view.show()
    with qtbot.waitSignal(view.loaded, timeout=LOAD_MS) as blocker:
        view.set_run(db, run_id)
    assert blocker.args == [run_id]
    return view


def test_maps_and_bars_hold_the_stored_models_values(qtbot, finished_run) -> None:
    db, run_id = finished_run
    view = _loaded_view(qtbot, db, run_id)
    with Store(db) as store:
        expected = dark_knowledge(store, run_id)
        row = store.get_run(run_id)
    assert expected.num_classes == 4

    teacher = _image_of(view, "teacherSoftMap")
    assert teacher.shape == (4, 4)
    assert np.allclose(teacher, expected.soft_matrix("teacher").numpy(), atol=1e-6)
    assert np.allclose(teacher.sum(1), 1.0, atol=1e-5)
    student = _image_of(view, "studentSoftMap")
    assert np.allclose(student, expected.soft_matrix("student").numpy(), atol=1e-6)
    assert not np.allclose(teacher, student)  # two different models, two different maps
    difference = _image_of(view, "confusionDiffMap")
    assert np.array_equal(difference, expected.confusion_difference().numpy())
    assert difference.sum() == 0  # the same test examples, moved between cells

    shown = {bars.opts["name"]: bars.opts["height"]
             for bars in _bars_in(view, "classAccuracyPlot")}
    assert set(shown) == {PHASE_LABELS[kind] for kind in ("teacher", "baseline", "student")}
    for kind in ("teacher", "baseline", "student"):
        assert np.allclose(shown[PHASE_LABELS[kind]], expected.accuracy[kind].numpy(),
                           atol=1e-6)
    counts = torch.bincount(expected.y_test, minlength=4).numpy()
    student_heights = shown[PHASE_LABELS["student"]]
    assert float((student_heights * counts).sum() / counts.sum()) == pytest.approx(
        row["student_test_acc"])
    gains = [float(label.textItem.toPlainText()) for label in view.accuracy_panel.gain_labels]
    assert gains == pytest.approx((expected.class_gain().numpy() * 100).round().tolist())

    assert f"T = {expected.temperature:g}" in view.teacher_map.title.text()
    assert "completed" in view.title.text()
    hover = view.teacher_map.describe(1.5, 2.5)  # row 2, column 1
    assert f"{expected.soft_matrix('teacher')[2, 1].item():.3f}" in hover


def test_off_diagonal_scale_saturates_the_diagonal(qtbot, finished_run) -> None:
    view = _loaded_view(qtbot, *finished_run)
    values = np.concatenate([view.teacher_map.values, view.student_map.values])
    off = np.concatenate([m.values[~np.eye(4, dtype=bool)]
                          for m in (view.teacher_map, view.student_map)])
    assert view.teacher_map.colorbar.levels() == pytest.approx((0.0, off.max()))
    assert off.max() < values.max()
    # what is painted: the colour map over (0, largest off-diagonal value), the diagonal
    # saturated at the map's top colour
    image = view.teacher_map.image
    colormap = image.colormap
    top = colormap.map(1.0, mode="byte")[:3]
    pixels = _pixels(image)
    assert pixels.shape == (4, 4, 4)
    saturated = image.values >= off.max()
    assert saturated.any() and not saturated.all()
    for (i, j), value in np.ndenumerate(image.values):
        expected = top if saturated[i, j] else colormap.map(value / off.max(), mode="byte")[:3]
        assert np.abs(pixels[i, j, :3].astype(int) - expected.astype(int)).max() <= 1
    view.off_diagonal.setChecked(False)
    assert view.teacher_map.colorbar.levels() == pytest.approx((0.0, 1.0))
    assert view.student_map.colorbar.levels() == pytest.approx((0.0, 1.0))
    rescaled = _pixels(view.teacher_map.image)
    for (i, j), value in np.ndenumerate(image.values):  # on (0, 1): the values' own colours
        expected = colormap.map(value, mode="byte")[:3]
        assert np.abs(rescaled[i, j, :3].astype(int) - expected.astype(int)).max() <= 1
    assert not np.array_equal(rescaled, pixels)


def test_temperature_slider_and_example_picker_rerender_the_bars(qtbot, finished_run) -> None:
    db, run_id = finished_run
    view = _loaded_view(qtbot, db, run_id)
    with Store(db) as store:
        expected = dark_knowledge(store, run_id)
    example = view.example_panel
    assert example.temperature == pytest.approx(expected.temperature)  # starts at the run's T
    assert view.example_panel.example_spin.maximum() == len(expected.y_test) - 1

    assert view.example_panel.soft_bars in _bars_in(view, "softTargetBars")
    before = view.example_panel.soft_bars.opts["height"].copy()
    assert np.allclose(before, expected.example_soft_targets("teacher", 0, 4.0).numpy(),
                       atol=1e-6)
    view.example_panel.temperature_slider.setValue(slider_value(0.5))
    colder = view.example_panel.soft_bars.opts["height"].copy()
    assert not np.allclose(colder, before)
    assert colder.max() > before.max()  # a lower T sharpens the distribution
    assert np.allclose(colder, expected.example_soft_targets("teacher", 0, 0.5).numpy(),
                       atol=1e-6)
    assert view.example_panel.temperature_label.text() == "T = 0.5"
    view.example_panel.temperature_slider.setValue(slider_value(20.0))
    assert view.example_panel.soft_bars.opts["height"].max() < before.max()
    assert np.allclose(example.plain_bars.opts["height"],  # the T = 1 outlines do not move
                       expected.example_soft_targets("teacher", 0, 1.0).numpy(), atol=1e-6)

    index = int(torch.nonzero(expected.y_test != expected.y_test[0])[0])
    view.example_panel.example_spin.setValue(index)
    true_name = expected.class_names[int(expected.y_test[index])]
    assert f"true class <b>{true_name}</b>" in view.example_panel.example_info.text()
    assert np.allclose(view.example_panel.soft_bars.opts["height"],
                       expected.example_soft_targets("teacher", index, 20.0).numpy(), atol=1e-6)
    view.example_panel.run_temperature_button.click()
    assert view.example_panel.temperature == pytest.approx(expected.temperature)


def test_slider_maps_temperatures_both_ways() -> None:
    for temperature in (0.5, 1.0, 4.0, 12.3, 20.0):
        assert slider_temperature(slider_value(temperature)) == pytest.approx(temperature)
    assert slider_temperature(slider_value(100.0)) == 20.0  # clamped to the slider's range


def _failed_message(qtbot, view: DarkKnowledgeView, db: Path, run_id: int) -> str:
    with qtbot.waitSignal(view.failed, timeout=LOAD_MS) as blocker:
        view.set_run(db, run_id, now=True)
    assert view.stack.currentWidget() is view.message
    assert view.message.text().endswith(blocker.args[0])
    assert "Traceback" not in view.message.text()
    return blocker.args[0]


def test_partial_runs_and_runs_without_models_get_a_message(qtbot, tmp_path: Path) -> None:
    db = tmp_path / "history.db"
    without_baseline = tiny_config(baseline=False)
    with Store(db) as store:
        stopped = run(tiny_config(), store, should_stop=lambda: True)
        completed = run(without_baseline, store)
    assert stopped.status == "stopped" and completed.status == "completed"
    view = DarkKnowledgeView()
    qtbot.addWidget(view)
    with qtbot.waitSignal(view.loaded, timeout=LOAD_MS):
        view.set_run(db, completed.run_id, now=True)
    assert {bars.opts["name"] for bars in _bars_in(view, "classAccuracyPlot")} == {
        PHASE_LABELS["teacher"], PHASE_LABELS["student"]}
    assert view.accuracy_panel.gain_labels == []  # no baseline, no gain
    assert not view.diff_map.image.isVisible()
    assert "baseline" in view.diff_map.note.toPlainText()

    assert "no saved models" in _failed_message(qtbot, view, db, stopped.run_id)
    assert "not in the history" in _failed_message(qtbot, view, db, 99)
    assert "does not exist" in _failed_message(qtbot, view, tmp_path / "gone.db", 1)
    assert not (tmp_path / "gone.db").exists()  # looking did not create a history

    with Store(db) as store:
        shutil.rmtree(store.artifact_dir(completed.run_id))  # the files deleted by hand
    assert "no saved models" in _failed_message(qtbot, view, db, completed.run_id)


def test_a_hidden_view_loads_when_first_shown(qtbot, finished_run) -> None:
    db, run_id = finished_run
    view = DarkKnowledgeView()
    qtbot.addWidget(view)
    view.set_run(db, run_id)
    assert not view.loading and view.knowledge is None  # nothing computed while hidden
    assert "Loading" in view.message.text()
    with qtbot.waitSignal(view.loaded, timeout=LOAD_MS):
        view.show()
    assert view.knowledge is not None
    view.forget_runs([run_id])
    assert "deleted" in view.message.text()
    assert view.stack.currentWidget() is view.message


def test_window_tab_follows_the_finished_run_and_the_history(qtbot, window) -> None:
    set_tiny_run(window, teacher_epochs=1, epochs=1)
    with qtbot.waitSignal(window.run_finished, timeout=60_000) as finished:
        assert window.start_run()
    run_id = finished.args[0]["run_id"]
    view = window.dark_knowledge
    assert view.run_id == run_id and view.knowledge is None  # not computed until looked at
    with qtbot.waitSignal(view.loaded, timeout=LOAD_MS):
        window.tabs.setCurrentWidget(view)
    classes = view.knowledge.num_classes
    assert classes >= 2 and _image_of(view, "teacherSoftMap").shape == (classes, classes)
    assert "gui-test" in view.title.text()

    window.tabs.setCurrentWidget(window.history)
    window.history.reload()
    window.history.select_runs([run_id])
    button = window.history.buttons["DarkKnowledge"]
    assert button.isEnabled()
    with qtbot.waitSignal(view.loaded, timeout=LOAD_MS):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert window.tabs.currentWidget() is view
    window.history.runs_deleted.emit([run_id])
    assert "deleted" in view.message.text()


def test_confusion_difference_colours_better_alike_and_has_a_labelled_colour_bar(
        qtbot, finished_run) -> None:
    db, run_id = finished_run
    view = _loaded_view(qtbot, db, run_id)
    diff_map = view.diff_map
    values = diff_map.values
    pixels = diff_map.image.colors()
    n = len(values)
    for i in range(n):
        for j in range(n):
            better = values[i, j] > 0 if i == j else values[i, j] < 0
            worse = values[i, j] < 0 if i == j else values[i, j] > 0
            rgb = pixels[i, j, :3].astype(int)
            if better:  # more right on the diagonal, fewer mistakes off it: blue side
                assert rgb[2] > rgb[0], (i, j, values[i, j], rgb)
            elif worse:
                assert rgb[0] > rgb[2], (i, j, values[i, j], rgb)
            else:
                assert tuple(rgb) == (255, 255, 255)
    texts = {(round(label.pos().y() - 0.5), round(label.pos().x() - 0.5)):
             label.textItem.toPlainText() for label in diff_map.cell_labels}
    for (i, j), text in texts.items():
        assert text == f"{values[i, j]:+.0f}" and values[i, j] != 0
    assert len(texts) == int(np.count_nonzero(values))  # zero cells stay blank
    zero = np.argwhere(values == 0)
    if len(zero):
        i, j = zero[0]
        assert diff_map.describe(j + 0.5, i + 0.5).endswith(": 0")
    assert "Δ samples" in diff_map.colorbar.axis.labelText
    gains = [label.textItem.toPlainText() for label in view.accuracy_panel.gain_labels]
    assert "+0" not in gains and "-0" not in gains
    for label, text in zip(view.accuracy_panel.gain_labels, gains, strict=True):
        colour = label.textItem.defaultTextColor().name()
        expected = "#707070" if text == "0" else ("#2e7d32" if text.startswith("+")
                                                  else "#c62828")
        assert colour == expected, text


@pytest.mark.parametrize(("size", "may_elide"), [((1010, 600), True), ((1590, 900), False)])
def test_panel_titles_stay_on_one_line_whole_or_elided_with_a_tooltip(
        qtbot, finished_run, size: tuple[int, int], may_elide: bool) -> None:
    """At the room the window gives the view at 1024x700 and 1600x1000: every panel title is
    one line, whole, or (only in the small window) elided with the whole title as tooltip."""
    from kdstudio.gui.insight.panels import Panel

    db, run_id = finished_run
    view = _loaded_view(qtbot, db, run_id)
    view.resize(*size)
    panels = view.findChildren(Panel)
    assert len(panels) == 5
    for panel in panels:  # a long read-out under the cursor must not squeeze the title
        panel.hover.setText("true <b>class 3</b> → <b>class 2</b>: 0.123 " * 3)
    qtbot.wait(50)
    line = panels[0].title.fontMetrics().height()
    for panel in panels:
        title = panel.title
        assert title.height() < 2 * line, title.full_text  # never wrapped onto a 2nd line
        assert title.full_text.strip() and "<" not in title.full_text
        if title.is_elided:
            assert may_elide, f"{title.full_text!r} elided at {size}"
            assert title.toolTip().startswith(title.full_text)
        else:
            needed = title.fontMetrics().horizontalAdvance(title.full_text)
            assert needed <= title.contentsRect().width(), title.full_text
        assert panel.plot.toolTip() in title.toolTip()  # what the panel shows, explained
