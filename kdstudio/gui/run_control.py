"""The window's side of a run: Start, Pause, Stop and Resume, the run's events routed to the
live view, and what the window shows when the run ends.

The run itself goes on in the worker thread (`gui/run/worker.py`, the window's
`controller`); `RunControl` only reacts to its signals on the GUI thread. An error of the
window's own code while a run starts, runs or ends stops the run, marks it failed with that
error and is shown once: the window is never left stuck in "running".
"""

from __future__ import annotations

import contextlib
import html
import time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject

from kdstudio.core.events import (
    Epoch,
    Event,
    PhaseFinished,
    PhaseStarted,
    ResumePoint,
    RunStarted,
    Step,
)
from kdstudio.core.plan import PHASES
from kdstudio.gui import consent
from kdstudio.gui.widgets.colours import PHASE_LABELS

if TYPE_CHECKING:
    from kdstudio.gui.main_window import MainWindow

STATUS_CHARS = 90  # the status line's first reason, cut to fit beside the buttons


def run_name(config: Any) -> str:
    """A readable default name: dataset, teacher -> student, method."""
    if config.distill.method == "none":
        return f"{config.data.dataset} {config.student.arch} alone"
    return (f"{config.data.dataset} {config.teacher.arch}->{config.student.arch} "
            f"{config.distill.method}")


def run_layout(config: Any) -> tuple[list[str], list[str], list[str]]:
    """The phases a config will run, the loss parts of its distillation and the values its
    schedules move (as the engine plans them), so the live view can set up its curves
    before the first event."""
    from kdstudio.core.distill.methods import METHODS
    from kdstudio.core.distill.schedules import parse_schedules
    from kdstudio.core.plan import phase_names

    method = METHODS.get(config.distill.method)
    moving = [key for key, schedule in parse_schedules(config.distill.schedules).items()
              if schedule.kind != "constant"]
    return phase_names(config), list(method.parts), moving


def phase_message(name: str, event: PhaseStarted) -> str:
    """What the status bar says while a run trains a phase."""
    label = PHASE_LABELS.get(event.phase, event.phase)
    epochs = f"{event.epochs} epoch{'s' if event.epochs != 1 else ''}"
    if event.first_epoch:
        epochs = f"from epoch {event.first_epoch + 1} of {event.epochs}"
    return f"Running {name}: {label} phase ({epochs})"


def before_resume(event: Event, resumed: ResumePoint) -> bool:
    """Whether a replayed event of a resumed run is from before the point it went on from
    (the run may have written more rows by the time its start reaches the window)."""
    if isinstance(event, Step):
        return event.run_step <= resumed.run_step
    if not isinstance(event, (Epoch, PhaseStarted, PhaseFinished)) or event.phase not in PHASES:
        return False
    here, there = PHASES.index(event.phase), PHASES.index(resumed.phase)
    if here != there:
        return here < there
    return event.epoch <= resumed.epoch if isinstance(event, Epoch) else (
        isinstance(event, PhaseStarted))


class RunControl(QObject):
    """Starts, pauses, stops and resumes the window's run and shows what it does; owned by
    the `MainWindow`, whose run buttons, labels and live view it drives."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.controller = window.controller
        self.window_error = ""  # the first error of the window's own code in this run
        self.run_name = ""  # of the run in progress, for the status bar
        self.stopped_for_error = False  # the window stopped the run because of it
        self.controller.event.connect(self.on_event)
        self.controller.event.connect(self.continue_curves)
        self.controller.problems.connect(self.on_refused)
        self.controller.finished.connect(self.on_run_done)

    # ------------------------------------------------------------ start, pause, stop

    def start(self) -> bool:
        """Validate the form and start the run in the worker thread; False if refused.

        An error of the window while starting stops the run, if it began (it ends failed
        with that error), and is shown once."""
        window = self.window
        if window.setup is None or self.controller.running:
            return False
        self.window_error, self.stopped_for_error = "", False
        try:
            return self._start()
        except Exception as error:  # noqa: BLE001 - never a window stuck in "running"
            self.window_failed(error)
            if not self.controller.running:  # else shown when the stopped run has ended
                self.show_window_error()
            self.update_buttons_safely()
            return False

    def _start(self) -> bool:
        window = self.window
        config, problems = window.setup.run_config()
        window.show_validation(problems)
        if problems or not self._code_trusted(config):
            return False
        if not config.name:
            config.name = run_name(config)
        window.live.begin_run(*run_layout(config))
        window.live.log(f"Starting {config.name}")
        # paint the cleared charts before the worker competes for the interpreter lock:
        # the first full repaint of the run view is the GUI thread's heaviest moment
        window.live.repaint()
        self.controller.start(config, window.db_path)
        window.status_label.setText(f"Running {config.name}")
        self.show_running(config.name)
        window.problems_label.hide()
        window._update_buttons()
        return True

    def show_running(self, name: str) -> None:
        """The status bar during a run: what the run does, never a message from before
        it ("Preset … loaded")."""
        self.run_name = name
        self.window.statusBar().showMessage(f"Running {name}: preparing the data and "
                                            "models…")

    def _code_trusted(self, config: Any) -> bool:
        """Whether the config's custom model files (if any) may be imported: trusted
        before, or now in the dialog that shows their paths and hashes."""
        from kdstudio.core.models.custom import trust, untrusted_code

        pending = untrusted_code(config)
        if not pending:
            return True
        if not consent.ask_code_consent(self.window, pending):
            self.window.status_label.setText("Not started: the model code was not trusted")
            return False
        trust(code.sha256 for code in pending)
        return True

    def toggle_pause(self) -> None:
        if not self.controller.running:
            return
        window = self.window
        progress = window.live.run_progress
        if self.controller.paused:
            self.controller.resume()
            progress.resume(time.monotonic())
            window.status_label.setText("Running")
            window.statusBar().showMessage(f"Running {self.run_name}")
            window.live.log("Resumed")
        else:
            self.controller.pause()
            progress.pause(time.monotonic())
            window.status_label.setText("Paused: press Resume to continue")
            window.statusBar().showMessage(f"Paused {self.run_name}")
            window.live.log("Paused after the current batch")
        window._update_buttons()

    def stop(self) -> None:
        if self.controller.running:
            self.controller.stop()
            self.window.status_label.setText("Stopping after the current batch…")
            self.window.statusBar().showMessage(f"Stopping {self.run_name} after the "
                                                "current batch…")
            self.window._update_buttons()

    def resume(self, run_id: int) -> bool:
        """Go on with a stopped or interrupted run in the workbench, through the same worker
        and engine as Start; its curves so far are shown first. False if refused here (the
        engine's own refusals come back as the run's problems)."""
        from kdstudio.core.config import config_from_dict
        from kdstudio.core.resume import refusal

        window = self.window
        store = window.store
        if window.setup is None or self.controller.running or store is None:
            window.statusBar().showMessage(
                "A run is in progress: stop it before resuming another" if
                self.controller.running else "The engine is still loading; Resume again in a "
                "moment", 8000)
            return False
        row = store.get_run(run_id)
        reason = refusal(row, store.artifact_dir(run_id), run_id)
        if reason or row is None:
            window.statusBar().showMessage(f"Cannot resume: {reason}", 10000)
            return False
        config, _problems = config_from_dict(row["config"])
        from kdstudio.core.engine.runner import use_code_copies

        use_code_copies(config, store.artifacts(run_id, "code"))
        if not self._code_trusted(config):
            return False
        window.live.begin_run(*run_layout(config))
        window.live.log(f"Resuming run #{run_id} {row['name']}")
        window.live.repaint()
        self.controller.start(config, window.db_path, resume_id=run_id)
        window.status_label.setText(f"Running {row['name']} (resumed)")
        self.show_running(f"{row['name']} (resumed)")
        window.problems_label.hide()
        window.tabs.setCurrentIndex(0)
        window._update_buttons()
        return True

    # ------------------------------------------------------------ events of the run

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.window.last_run_id = event.run_id
        elif isinstance(event, PhaseStarted) and self.controller.running:
            self.window.statusBar().showMessage(phase_message(self.run_name, event))
        if self.window_error:
            return  # the run is stopping because of it
        try:
            self.window.live.push(event)
        except Exception as error:  # noqa: BLE001 - stop the run, mark it failed, show once
            self.window_failed(error)
            self.update_buttons_safely()

    def continue_curves(self, event: Event) -> None:
        """When a resumed run has started (and dropped its unfinished epoch), show what it
        had done before, then its new steps follow."""
        if not isinstance(event, RunStarted) or event.resumed is None:
            return
        from kdstudio.core.replay import replay_events

        store = self.window.store
        if store is None:
            return
        resumed = event.resumed
        for _when, replayed in replay_events(store, event.run_id):
            if before_resume(replayed, resumed):
                self.window.live.push(replayed)

    def on_refused(self, problems: list[str]) -> None:
        try:
            self._show_refused(problems)
        except Exception as error:  # noqa: BLE001 - shown once when the run has ended
            self.window_failed(error)

    def _show_refused(self, problems: list[str]) -> None:
        for problem in problems:
            self.window.live.log(problem, "error")
        self.window.problems_label.setText("<b>The run could not start:</b><br>" + "<br>".join(
            "• " + html.escape(p, quote=False) for p in problems))
        self.window.problems_label.show()

    # ------------------------------------------------------------ the run's end

    def on_run_done(self, result: dict[str, Any] | None) -> None:
        """Show how the run ended; whatever fails here, Start is enabled again after."""
        window = self.window
        try:
            if self.window_error and result is not None and result["status"] == "stopped":
                result = self._mark_failed(result, self.window_error)
            self._show_run_end(result)
        except Exception as error:  # noqa: BLE001 - the window must stay usable
            self.window_failed(error)
        self.update_buttons_safely()
        if self.window_error and result is not None and result["status"] != "failed":
            # the window failed at the run's end: the run is marked failed with the reason
            # (its results stay stored), as for an error while it ran
            with contextlib.suppress(Exception):
                result = self._mark_failed(result, self.window_error)
        window.run_finished.emit(result)
        self.show_window_error()
        if window.close_when_stopped:
            window.close()

    def _mark_failed(self, result: dict[str, Any], reason: str) -> dict[str, Any]:
        """Record a run as failed because of the window's own error (its stored results
        stay)."""
        store = self.window.store
        if store is not None:
            store.finish_run(result["run_id"], "failed", reason)
        return {**result, "status": "failed", "error": reason}

    def _show_run_end(self, result: dict[str, Any] | None) -> None:
        window = self.window
        window.live.end_run()
        if result is not None and not window.is_closed:
            store = window.store
            row = store.get_run(result["run_id"]) if store is not None else None
            window.live.summary_card.show_run(row or result)
            status = result["status"]
            window.status_label.setText(f"Run #{result['run_id']} {status}"
                                        + (f": {result['error']}" if result.get("error")
                                           else ""))
            window.statusBar().showMessage(f"Run #{result['run_id']} {status}; saved in "
                                           f"{window.db_path}", 10000)
            window.dark_knowledge.set_run(window.db_path, result["run_id"])  # loads when shown
        elif result is None:
            window.statusBar().clearMessage()  # the problems are shown above the form
            window.status_label.setText("The run did not start")
            window.live.progress_bar.setFormat("did not start")
            window.live.summary_card.title.setText("The run did not start: see the problems "
                                                   "above the form")
        if window.setup is not None and not window.is_closed and result is not None:
            window.setup.history_changed()  # (a refused run keeps its problems shown)
            window.setup.schedule_validation()

    # ------------------------------------------------------------ errors of the window itself

    def window_failed(self, error: Exception) -> None:
        """Note the first error of the window's own code in a run and stop the run: the
        run is then marked failed with it once the worker has finished."""
        if not self.window_error:
            self.window_error = f"window error: {type(error).__name__}: {error}"
            with contextlib.suppress(Exception):
                self.window.live.log(self.window_error, "error")
        if self.controller.running and not self.controller.flags.stop.is_set():
            self.controller.stop()
            self.stopped_for_error = True

    def show_window_error(self) -> None:
        """Show the noted window error, once; the next run starts with none."""
        window = self.window
        message, self.window_error = self.window_error, ""
        stopped, self.stopped_for_error = self.stopped_for_error, False
        if not message:
            return
        with contextlib.suppress(Exception):
            window.status_label.setText(message)
        if not window.is_closed and not window.close_when_stopped:
            window.warn("Run", message + ("\n\nThe window stopped the run; what it had "
                                          "trained so far is in the history." if stopped
                                          else ""))

    def update_buttons_safely(self, for_run: bool = True) -> None:
        """The window's button update, or at least Start and Stop right if it fails. The
        error is the run's (it ends failed with it) unless `for_run` is false (an update
        between runs, e.g. after validation): then the status bar says it."""
        window = self.window
        try:
            window._update_buttons()
        except Exception as error:  # noqa: BLE001 - the window must stay usable
            running = self.controller.running
            if for_run or running:
                self.window_failed(error)
            else:
                window.statusBar().showMessage(
                    f"window error: {type(error).__name__}: {error}", 10000)
            window.start_button.setEnabled(window.setup is not None and not running)
            window.stop_button.setEnabled(running and not self.controller.flags.stop.is_set())
        if not for_run:
            self.show_start_status()

    def show_start_status(self) -> None:
        """Between runs the status says why Start is disabled ("Cannot start: <first
        reason>"), or "Ready" once nothing stops it; a finished run's status stays until
        the form has a problem."""
        window = self.window
        if window.setup is None or self.controller.running:
            return
        problems = list(window._problems)
        label = window.status_label
        if problems:
            shown = [p for p in problems if not window.setup.waiting(p)]
            if shown:
                first = window.setup.readable(shown[0])
                if len(first) > STATUS_CHARS:  # the whole list is in the tooltip
                    first = first[:STATUS_CHARS - 1].rstrip() + "…"
                more = f" (and {len(shown) - 1} more)" if len(shown) > 1 else ""
                label.setText(f"Cannot start: {first}{more}")
            else:
                label.setText("Cannot start yet: checking the data files…")
            label.setToolTip("\n".join(window.setup.readable(p) for p in problems))
        elif label.text().startswith("Cannot start") or label.text() in ("", "Ready"):
            label.setText("Ready")
            label.setToolTip("")
