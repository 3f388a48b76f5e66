"""Progress of a run: one bar for the whole run and one per phase, each with its ETA.

The run's bar goes by measured time (a `TimeEstimate`), not by steps: each phase is
priced at its own pace and paused time is left out."""

from __future__ import annotations

import time
from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from kdstudio.core.events import Step
from kdstudio.core.plan import RunPlan
from kdstudio.core.progress import TimeEstimate, clock, seconds_left
from kdstudio.gui.widgets.colours import PHASE_COLORS, PHASE_LABELS
from kdstudio.gui.widgets.fitted_bar import FittedBar


def time_left(started: float, done: float, now: float) -> float | None:
    """Seconds left when a fraction `done` took `now - started` seconds; None before the
    work started (`started` is 0) or before any of it is done."""
    return seconds_left(now - started, done) if started > 0 else None


class PhaseBar(QWidget):
    """Label + progress bar of one phase, with its own ETA."""

    def __init__(self, phase: str, steps: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.phase = phase
        self.steps = max(steps, 0)
        self.started = 0.0
        self.bar = FittedBar(f"Progress of the {PHASE_LABELS.get(phase, phase).lower()} "
                             "phase and its time left")
        self.bar.setObjectName(f"progress_{phase}")
        self.bar.setRange(0, max(self.steps, 1))
        self.bar.setValue(0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.set_epoch("")
        layout.addWidget(self.title)
        layout.addWidget(self.bar)
        self.show_waiting()

    def reset(self, steps: int | None) -> None:
        """Ready for a run with this many steps in the phase; None: not in this run."""
        self.started = 0.0
        self.steps = max(steps or 0, 0)
        self.bar.setRange(0, max(self.steps, 1))
        self.bar.setValue(0)
        self.set_epoch("")
        self.bar.setEnabled(steps is not None)
        if steps is None:
            self.set_text("not in this run", "—")
        else:
            self.show_waiting()

    def show_waiting(self) -> None:
        if self.steps:
            self.set_text("waiting")
        else:
            self.set_text("loaded, no training", "loaded")

    def set_text(self, *texts: str) -> None:
        """The bar's text, longest first: it shows the first that fits."""
        self.bar.set_texts(*texts)

    def set_epoch(self, text: str) -> None:
        color = PHASE_COLORS.get(self.phase, "#333")
        self.title.setText(f"<b style='color:{color}'>{PHASE_LABELS.get(self.phase, self.phase)}"
                           f"</b>" + (f" <span style='color:#888'>{text}</span>" if text else ""))

    def update_step(self, step: int, now: float, left: float | None = None) -> None:
        """Show `step` done; `left` is the phase's time left, else it is taken from its
        start and its share of steps done."""
        self.bar.setValue(min(step, self.bar.maximum()))
        if left is None:
            left = time_left(self.started, step / max(self.steps, 1), now)
        share = f"{step / max(self.steps, 1):.0%}"
        if left is not None and step < self.steps:
            self.set_text(f"{share} · ETA {clock(left)}", share)
        else:
            self.set_text(share)

    def finish(self, now: float, took_seconds: float | None = None) -> None:
        """Show the phase done; `took_seconds` (paused time left out) else `now - started`."""
        self.bar.setValue(self.bar.maximum())
        if took_seconds is None and self.started:
            took_seconds = now - self.started
        took = f" in {clock(took_seconds)}" if took_seconds is not None else ""
        if self.steps:
            self.set_text(f"done{took}", "done")
        else:
            self.set_text("loaded")


class RunProgress(QWidget):
    """The run's bar (`bar`, all phases, with the run's ETA) beside one `PhaseBar` per
    phase. Times are on one clock for the whole run: monotonic live, wall clock in a replay."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.run_steps = 0
        self.run_started = 0.0
        self.estimate: TimeEstimate | None = None
        self.bar = FittedBar("Progress of the whole run (all phases), time elapsed and time "
                             "left")
        self.bar.setObjectName("progressBar")
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("idle")
        # one bar per phase, always there: adding widgets mid-run would re-lay out the window
        self.phase_bars = {phase: PhaseBar(phase, 0) for phase in PHASE_LABELS}
        phase_row = QHBoxLayout()
        phase_row.setSpacing(10)
        for phase_bar in self.phase_bars.values():
            phase_bar.reset(None)
            phase_bar.set_text("idle")
            phase_row.addWidget(phase_bar, 1)

        overall = QVBoxLayout()
        overall.setSpacing(1)
        overall.addWidget(QLabel("<b>Run</b>"))
        overall.addWidget(self.bar)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(overall, 2)
        layout.addLayout(phase_row, 5)

    def begin(self, phases: Sequence[str]) -> None:
        """Waiting for a run of these phases, whose plan is not known yet."""
        self.run_steps = 0
        self.run_started = time.monotonic()
        self.estimate = None
        for phase, phase_bar in self.phase_bars.items():
            phase_bar.reset(0 if phase in phases else None)
            if phase in phases:
                phase_bar.set_text("waiting")
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.set_texts("preparing data and models…", "preparing…")

    def start(self, plan: RunPlan, started: float) -> None:
        """The run trains by `plan` from `started` on."""
        self.run_steps = plan.run_steps
        self.run_started = started
        steps = {phase.name: phase.steps for phase in plan.phases}
        self.estimate = TimeEstimate(steps)
        self.bar.setRange(0, max(self.run_steps, 1))  # the bar's value: share of time
        self.bar.setValue(0)
        self.bar.setFormat("0%")
        for phase, phase_bar in self.phase_bars.items():
            phase_bar.reset(steps.get(phase))

    def elapsed(self, now: float) -> float:
        """Seconds the run has been going at `now`, paused time left out."""
        if self.estimate is None:
            return max(now - self.run_started, 0.0)
        return max(self.estimate.active(now) - self.run_started, 0.0)

    def pause(self, now: float) -> None:
        """The run is paused from `now` on: that time counts neither as elapsed nor in ETAs."""
        if self.estimate is not None:
            self.estimate.pause(now)
            self.show_run(now)

    def resume(self, now: float) -> None:
        if self.estimate is not None:
            self.estimate.resume(now)
            self.show_run(now)

    def phase_started(self, phase: str, now: float) -> None:
        if self.estimate is not None:
            self.estimate.phase_started(phase, now)
        phase_bar = self.phase_bars.get(phase)
        if phase_bar is not None:
            phase_bar.started = now
            phase_bar.set_text("0%")

    def phase_finished(self, phase: str, now: float) -> None:
        took = None
        if self.estimate is not None:
            self.estimate.phase_finished(phase, now)
            took = self.estimate.spent.get(phase)
            self.show_run(now)
        phase_bar = self.phase_bars.get(phase)
        if phase_bar is not None:
            phase_bar.finish(now, took)

    def show_run(self, now: float) -> None:
        """The run's bar at `now`: share of its time done, elapsed and time left."""
        estimate = self.estimate
        if estimate is None:
            return
        done = estimate.fraction_done()
        left = estimate.left()
        self.bar.setValue(round(done * self.bar.maximum()))
        share = f"{done:.0%}"
        text = f"{share} · elapsed {clock(self.elapsed(now))}"
        if estimate.paused_since is not None:
            self.bar.set_texts(f"{text} · paused", f"{share} · paused", share)
        elif left is not None:
            self.bar.set_texts(f"{text} · ETA {clock(left)}", f"{share} · ETA {clock(left)}",
                               share)
        else:
            self.bar.set_texts(text, share)

    def show_step(self, event: Step, now: float) -> None:
        """Move the run's bar and its phase's bar to `event`, with the time left."""
        estimate = self.estimate
        if estimate is not None:
            estimate.step(event.phase, event.step, now)
        phase_bar = self.phase_bars.get(event.phase)
        if phase_bar is not None:
            phase_bar.set_epoch(f"epoch {event.epoch}/{event.epochs}")
            left = estimate.phase_left(event.phase) if estimate is not None else None
            phase_bar.update_step(event.step, now, left)
        self.show_run(now)

    def finish(self, status: str, now: float) -> str:
        """Show how the run ended (`status`); returns how long it took, as h:mm:ss text."""
        if self.estimate is not None:
            self.estimate.resume(now)
        if status == "completed":
            self.bar.setValue(self.bar.maximum())
        took = clock(self.elapsed(now))
        self.bar.set_texts(f"{status} after {took}", status)
        for phase_bar in self.phase_bars.values():
            bar = phase_bar.bar
            if bar.value() < bar.maximum() and status != "completed":
                share = f"{bar.value() / bar.maximum():.0%}"
                phase_bar.set_text(f"{share} · {status}", share)
        return took
