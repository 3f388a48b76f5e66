"""Sweeps from the window: the Sweep dialog built from the form, its sweep TOML read back by
the core, and real local sweeps run from it into the queue tab and the history."""

from __future__ import annotations

import time
import tomllib

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QPushButton

from kdstudio.core.store import Store
from kdstudio.core.sweep import read_sweep, sweep_from_dict
from tests.gui.conftest import find, set_tiny_run

SWEEP_TIMEOUT_MS = 60_000


def open_dialog(window, **run):
    set_tiny_run(window, **run)
    dialog = window.open_sweep_dialog()
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()
    return dialog


def tick(row, *values) -> None:
    for box in row.ticks:
        box.setChecked(box.property("sweepValue") in values)


def test_dialog_axes_count_and_the_saved_toml_read_back(qtbot, window, tmp_path):
    dialog = open_dialog(window)
    assert dialog.add_axis("seed") is None  # seeds have their own editor
    temperature = dialog.add_axis("distill.temperature")
    assert temperature.list_edit.text() == "4"  # the form's value to start from
    temperature.mode.setCurrentIndex(temperature.mode.findData("range"))
    temperature.low.setText("2")
    temperature.high.setText("8")
    temperature.count.setValue(3)
    temperature.log.setChecked(True)
    optimiser = dialog.add_axis("optim.name")
    tick(optimiser, "sgd", "adam")
    dialog.seed_edit.setText("2")  # number of seeds: the form's seed 1, then 2
    assert dialog.problems == []
    assert dialog.count_label.text() == ("<b>12 trials</b> (3 temperatures × 2 optimisers × "
                                         "2 seeds)")
    assert dialog.sweep_dict()[0]["axes"] == {"distill.temperature": [2.0, 4.0, 8.0],
                                              "optim.name": ["sgd", "adam"], "seed": [1, 2]}

    path = dialog.save_sweep(tmp_path / "temps.toml")
    assert path is not None
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data["base"] == "temps.base.toml"
    base = tomllib.loads((tmp_path / "temps.base.toml").read_text(encoding="utf-8"))
    assert base == dialog.config == window.setup.run_config()[0].to_dict()
    read = read_sweep(path)
    assert read.axes == dialog.spec.axes == sweep_from_dict(data).axes
    assert (read.method, read.trials, read.metric) == ("grid", 0, "student_test_acc")

    dialog.method.setCurrentIndex(dialog.method.findData("random"))
    dialog.trials.setValue(5)
    assert dialog.trials.isEnabled()
    assert dialog.sweep_dict()[0]["axes"]["distill.temperature"] == {"low": 2.0, "high": 8.0,
                                                                     "log": True}
    assert dialog.count_label.text() == "<b>5 trials</b> (random over 3 keys)"
    dialog.method.setCurrentIndex(dialog.method.findData("grid"))

    other = open_dialog(window)
    assert other is not dialog
    assert other.open_sweep(path) == ""
    assert {row.key for row in other.rows} == {"distill.temperature", "optim.name"}
    assert other.sweep_dict()[0]["axes"] == read.axes
    assert other.count_label.text().startswith("<b>12 trials</b>")


def test_bad_values_are_shown_inline_and_block_start(qtbot, window):
    dialog = open_dialog(window)
    kd = dialog.add_axis("distill.kd_weight")
    kd.list_edit.setText("0.5, -1")
    assert not kd.error.isHidden()  # shown by its row, once the row is painted
    assert kd.error.text() == "distill.kd_weight: must be >= 0 (got -1)"
    assert not dialog.start_button.isEnabled() and not dialog.start()
    kd.list_edit.setText("0.5, x")
    assert kd.error.text() == "distill.kd_weight: 'x' is not a number"
    epochs = dialog.add_axis("optim.epochs")
    epochs.mode.setCurrentIndex(1)
    epochs.low.setText("5")
    epochs.high.setText("2")
    assert epochs.error.text() == "optim.epochs: the range needs low < high (got 5..2)"
    kd.list_edit.setText("0.5, 0.9")
    epochs.high.setText("9")
    dialog.seed_edit.setText("zero")
    assert dialog.problems == ["seed: 'zero' is not a whole number of seeds"]
    assert not dialog.problems_label.isHidden() and "seed" in dialog.problems_label.text()
    dialog.seed_edit.setText("1")
    assert dialog.problems == [] and dialog.start_button.isEnabled()

    # a form with problems opens no dialog: its problems are shown above the form
    window.setup.teacher_params.widgets["hidden_sizes"].setText("x")
    window.setup.validate_now()
    assert window.open_sweep_dialog() is None
    assert window.problems_label.isVisible()
    assert "Teacher hidden sizes: expected whole numbers" in window.problems_label.text()
    assert not window.sweep_button.isEnabled()


def test_a_local_sweep_from_the_dialog_fills_the_queue_and_the_history(qtbot, window,
                                                                      tmp_path):
    # no teacher: both trials at once, each long enough for the two to overlap
    dialog = open_dialog(window, epochs=200, method="none", samples=2000)
    dialog.add_axis("optim.lr").list_edit.setText("0.05, 0.1")
    dialog.workers.setValue(2)
    queue = window.sweeps.queue
    with qtbot.waitSignal(queue.sweep_finished, timeout=SWEEP_TIMEOUT_MS) as finished:
        qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
        assert not dialog.isVisible()
        assert window.tabs.currentWidget() is queue
        assert not window.sweep_button.isEnabled()  # one sweep at a time
    result = finished.args[0]
    assert result.completed == 2 and result.failed == result.stopped == 0
    assert queue.statuses() == {0: "completed", 1: "completed"}
    ids = queue.finished_run_ids()
    assert sorted(ids) == sorted(result.run_ids) and len(ids) == 2
    assert queue.table.item(0, 1).text() == "lr=0.05"
    assert queue.table.item(0, 4).text() == f"#{ids[0]}"
    assert float(queue.table.item(0, 3).text()) >= 0
    assert "2 completed, 0 failed, 0 stopped" in queue.summary.text()
    with Store(tmp_path / "history.db") as store:
        rows = store.runs_in_group(result.group_id)
    assert [row["id"] for row in rows] == sorted(ids)
    assert result.group_id.startswith("sweep:gui-test:")
    lr = {row["id"]: row["config"]["optim"]["lr"] for row in rows}
    assert [lr[queue.run_ids[0]], lr[queue.run_ids[1]]] == [0.05, 0.1]
    assert max(queue.started_at.values()) < min(queue.ended_at.values())  # 2 workers at once
    assert all(row["status"] == "completed" for row in rows)
    assert set(ids) <= {run["id"] for run in window.history.model.runs}
    assert window.sweep_button.isEnabled()

    qtbot.mouseClick(find(window, QPushButton, "sweepCompare"), Qt.MouseButton.LeftButton)
    assert window.tabs.currentWidget() is window.compare
    assert sorted(window.compare.run_ids()) == sorted(ids)
    assert window.compare.charts.currentWidget() is window.compare.parallel

    # the same sweep again from the same form: its group finds both trials done
    again = window.open_sweep_dialog()
    again.add_axis("optim.lr").list_edit.setText("0.05, 0.1")
    with qtbot.waitSignal(queue.sweep_finished, timeout=SWEEP_TIMEOUT_MS) as finished:
        assert again.start()
    assert finished.args[0].group_id == result.group_id
    assert queue.statuses() == {0: "skipped", 1: "skipped"}
    assert "completed run of this sweep" in queue.table.item(0, 2).toolTip()
    assert "2 completed before" in queue.title.text()
    with Store(tmp_path / "history.db") as store:
        assert len(store.runs_in_group(result.group_id)) == 2  # no new run


def test_cancel_mid_sweep_starts_no_further_trial(qtbot, window, tmp_path):
    dialog = open_dialog(window, epochs=3000, method="none")
    dialog.add_axis("optim.lr").list_edit.setText("0.05, 0.1, 0.2")
    dialog.workers.setValue(1)
    queue = window.sweeps.queue
    assert dialog.start()
    qtbot.waitUntil(lambda: queue.statuses().get(0) == "running", timeout=SWEEP_TIMEOUT_MS)
    with Store(tmp_path / "history.db") as store:
        qtbot.waitUntil(lambda: bool(store.metrics(queue.run_ids[0], name="loss/total")),
                        timeout=SWEEP_TIMEOUT_MS)
    beats = [time.monotonic()]
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: beats.append(time.monotonic()))
    heartbeat.start(20)
    with qtbot.waitSignal(queue.sweep_finished, timeout=SWEEP_TIMEOUT_MS):
        qtbot.mouseClick(find(window, QPushButton, "sweepCancel"), Qt.MouseButton.LeftButton)
        assert not queue.cancel_button.isEnabled()
    heartbeat.stop()
    gaps = [b - a for a, b in zip(beats, beats[1:], strict=False)]
    assert gaps and max(gaps) < 0.5  # the window kept answering while the sweep stopped
    assert queue.statuses() == {0: "stopped", 1: "skipped", 2: "skipped"}
    with Store(tmp_path / "history.db") as store:
        group = store.runs_in_group(queue.group_id)
    assert [(run["id"], run["status"]) for run in group] == [(queue.run_ids[0], "stopped")]
    assert "cancelled" in queue.title.text()


def test_closing_the_window_mid_sweep_stops_its_trials(qtbot, window, tmp_path):
    dialog = open_dialog(window, epochs=3000, method="none")
    dialog.add_axis("optim.lr").list_edit.setText("0.05, 0.1")
    dialog.workers.setValue(1)
    queue = window.sweeps.queue
    assert dialog.start()
    qtbot.waitUntil(lambda: queue.run_ids.get(0) is not None, timeout=SWEEP_TIMEOUT_MS)
    assert window.close()  # confirm_close answers yes; it waits for the sweep to stop
    assert queue.task is None or queue.task.wait(0)  # the sweep's thread has ended
    with Store(tmp_path / "history.db") as store:
        rows = store.runs_in_group(queue.group_id)
    assert [(row["id"], row["status"]) for row in rows] == [(queue.run_ids[0], "stopped")]
