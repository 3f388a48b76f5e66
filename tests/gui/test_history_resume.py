"""The History's Resume button: enabled only for one selected stopped or interrupted run
with a checkpoint (the tooltip says why not otherwise); it goes on with the run in the
workbench, in its own row, and ends as an uninterrupted run would."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QPushButton

from kdstudio.core.engine import run
from kdstudio.core.events import Epoch, PhaseFinished, PhaseStarted, ResumePoint, Step
from kdstudio.core.store import Store
from tests.gui.conftest import find
from tests.helpers import tiny_config
from tests.reliability.test_resume import metric_rows, stop_after

RUN_TIMEOUT_MS = 60_000


def test_resume_button_states_and_a_resumed_run_in_the_window(qtbot, window, tmp_path):
    qtbot.waitUntil(lambda: window.setup is not None, timeout=30_000)
    with Store(tmp_path / "history.db") as store:
        completed = run(tiny_config(), store).run_id
        early = run(tiny_config(), store, should_stop=stop_after(2)).run_id  # no epoch ended
        stopped = run(tiny_config(), store, should_stop=stop_after(12)).run_id
    with Store(tmp_path / "reference.db") as reference_store:
        reference = metric_rows(reference_store, run(tiny_config(), reference_store).run_id)
        plan = {p["name"]: p["steps"] for p in reference_store.get_run(1)["plan"]}
    history = window.history
    history.reload()
    button = find(window, QPushButton, "historyResume")
    for run_id, enabled, why in (
            (completed, False, f"run {completed} (tiny) is completed"),
            (early, False, f"run {early} (tiny) has no checkpoint"),
            (stopped, True, "")):
        history.select_runs([run_id])
        assert button.isEnabled() is enabled
        assert (why in button.toolTip()) if why else "Not now" not in button.toolTip()
    history.select_runs([completed, stopped])
    assert not button.isEnabled() and "Select one" in button.toolTip()

    history.select_runs([stopped])
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        assert window.controller.running
        assert not window.start_button.isEnabled()
    result = finished.args[0]
    assert result["status"] == "completed" and result["run_id"] == stopped
    with Store(tmp_path / "history.db") as store:
        assert metric_rows(store, stopped) == reference
        assert [r["status"] for r in store.list_runs()] == ["completed", "stopped", "completed"]
    # the curves show the whole run: the steps before the stop, replayed, and those after
    live = window.live
    assert live.loss_chart.point_count() == 2 * plan["teacher"] + 2 * plan["baseline"] \
        + 3 * plan["student"]
    assert live.steps_seen == live.run_steps == sum(plan.values())
    qtbot.waitUntil(lambda: not button.isEnabled(), timeout=5_000)  # completed now


def test_the_form_sets_and_shows_keep_checkpoints(qtbot, window):
    qtbot.waitUntil(lambda: window.setup is not None, timeout=30_000)
    check = find(window, QCheckBox, "keepCheckpointsCheck")
    assert window.setup.run_config()[0].keep_checkpoints is False
    check.setChecked(True)
    assert window.setup.run_config()[0].keep_checkpoints is True
    config = tiny_config()
    config.keep_checkpoints = False
    window.setup.set_config(config.to_dict())
    assert not check.isChecked()
    config.keep_checkpoints = True
    window.setup.set_config(config.to_dict())
    assert check.isChecked()


def test_only_what_was_done_before_the_resume_point_is_replayed(tmp_path):
    """The window replays a resumed run's rows when its start arrives; by then the run may
    have written more: those are left to the live events."""
    from kdstudio.core.replay import replay_events
    from kdstudio.gui.run_control import before_resume

    with Store(tmp_path / "history.db") as store:
        run_id = run(tiny_config(), store).run_id  # 10 steps in each phase, 2 epochs each
        events = replay_events(store, run_id)
    resumed = ResumePoint("baseline", 1, 15)
    kept = [event for _when, event in events if before_resume(event, resumed)]
    steps = [event.run_step for event in kept if isinstance(event, Step)]
    assert steps == list(range(1, 16))
    epochs = [(event.phase, event.epoch) for event in kept if isinstance(event, Epoch)]
    assert epochs == [("teacher", 1), ("teacher", 2), ("baseline", 1)]
    phases = [(event.phase, type(event)) for event in kept
              if isinstance(event, (PhaseStarted, PhaseFinished))]
    assert phases == [("teacher", PhaseStarted), ("teacher", PhaseFinished),
                      ("baseline", PhaseStarted)]
