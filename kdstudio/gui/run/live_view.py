"""Live view of a run: progress per phase with ETA, charts, log, and the summary card.

Engine events arrive (as signals, in the GUI thread) through `push`, which only buffers them.
A GUI-thread timer (`REFRESH_MS`) drains the buffer, hands each event to the parts it
concerns and redraws, so the window does the same small amount of work however fast the
training steps come.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QBoxLayout, QLabel, QSlider, QSplitter, QVBoxLayout, QWidget

from kdstudio.core.events import (
    Epoch,
    Event,
    Log,
    PhaseFinished,
    PhaseStarted,
    PhaseTested,
    RunFinished,
    RunStarted,
    Step,
)
from kdstudio.gui.run.live_charts import DEFAULT_PARTS, LiveCharts
from kdstudio.gui.run.log_panel import LogPanel
from kdstudio.gui.run.progress import RunProgress
from kdstudio.gui.run.summary_card import SummaryCard
from kdstudio.gui.widgets.colours import PHASE_LABELS

REFRESH_MS = 100  # 10 redraws per second
NARROW_WIDTH = 760  # below it the smoothing control leaves the progress row


class LiveView(QWidget):
    """Progress, charts, log and summary of the current run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("liveView")
        self._pending: deque[tuple[float, Event]] = deque()
        self.steps_seen = 0
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.drain)
        self._ticks = 0
        self._setup_tick = False
        self._wall_clock = False  # True while showing a replay: event times are wall clock

        self.run_progress = RunProgress()
        self.progress_bar = self.run_progress.bar
        self.phase_bars = self.run_progress.phase_bars

        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setObjectName("smoothingSlider")
        self.smoothing.setRange(0, 99)
        self.smoothing.setValue(60)
        self.smoothing.setMaximumWidth(160)
        tip = ("Smoothing of the per-step charts: debiased exponential moving average, as in "
               "TensorBoard. s = w·s + (1 − w)·value, shown as s / (1 − wⁿ).")
        self.smoothing.setToolTip(tip)
        self.smoothing_label = QLabel()
        self.smoothing_label.setToolTip(tip)
        self.smoothing.valueChanged.connect(self._on_smoothing)

        self.live_charts = LiveCharts()
        self.loss_chart = self.live_charts.loss_chart
        self.accuracy_chart = self.live_charts.accuracy_chart
        self.agreement_chart = self.live_charts.agreement_chart
        self.lr_chart = self.live_charts.lr_chart
        self.speed_chart = self.live_charts.speed_chart
        self.charts = self.live_charts.charts

        self.log_view = LogPanel()
        self.summary_card = SummaryCard()

        self._layout()
        self._on_smoothing(self.smoothing.value())
        # the curves of the default preset
        self.live_charts.make_curves(tuple(PHASE_LABELS), DEFAULT_PARTS)
        self.live_charts.set_empty(True)  # their legends wait for a run

    @property
    def run_steps(self) -> int:
        """Steps of the whole run, once its plan is known (0 before)."""
        return self.run_progress.run_steps

    def _layout(self) -> None:
        header = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        header.addWidget(self.run_progress, 7)
        smooth = QBoxLayout(QBoxLayout.Direction.TopToBottom)
        smooth.setSpacing(1)
        smooth.addStretch(1)
        smooth.addWidget(self.smoothing_label)
        smooth.addWidget(self.smoothing)
        header.addLayout(smooth)
        self._header, self._smooth = header, smooth

        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.setObjectName("bottomSplitter")
        bottom.addWidget(self.log_view)
        bottom.addWidget(self.summary_card)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        self.bottom_splitter = bottom

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("liveSplitter")
        self.splitter.addWidget(self.live_charts)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 4)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.splitter, 1)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        """Narrow: the smoothing control goes below the progress bars, which need the room."""
        super().resizeEvent(event)
        narrow = self.width() < NARROW_WIDTH
        self._header.setDirection(QBoxLayout.Direction.TopToBottom if narrow
                                  else QBoxLayout.Direction.LeftToRight)
        self._smooth.setDirection(QBoxLayout.Direction.LeftToRight if narrow
                                  else QBoxLayout.Direction.TopToBottom)

    def _on_smoothing(self, value: int) -> None:
        weight = value / 100.0
        self.smoothing_label.setText(f"Smoothing {weight:.2f}")
        self.live_charts.set_smoothing(weight)

    # ------------------------------------------------------------ run lifecycle

    def begin_run(self, phases: Sequence[str] = tuple(PHASE_LABELS),
                  loss_parts: Sequence[str] = DEFAULT_PARTS,
                  scheduled: Sequence[str] = ()) -> None:
        """Clear everything for a new run, set up its curves, start the redraw timer.

        Curves and markers are made here, at Start (and reused when the next run has the
        same phases and loss parts), so the timer's ticks during the run only add points.
        """
        self._pending.clear()
        self.steps_seen = 0
        self._ticks = 0
        phases = [p for p in phases if p in PHASE_LABELS]
        self.run_progress.begin(phases)
        self.live_charts.begin(phases, loss_parts, scheduled)
        self.log_view.clear()
        self.summary_card.clear()
        self.summary_card.title.setText("Run in progress…")
        self.timer.start()

    def push(self, event: Event, arrived: float | None = None) -> None:
        """Buffer one engine event (cheap; drawing happens on the timer). `arrived`: when it
        happened, on one clock for the whole run (default: now, monotonic)."""
        self._pending.append((time.monotonic() if arrived is None else arrived, event))

    def replay(self, events: Sequence[tuple[float, Event]],
               phases: Sequence[str], loss_parts: Sequence[str],
               scheduled: Sequence[str] = ()) -> None:
        """Show a saved run from its replayed events (`core.replay`), timed by when the
        engine wrote them; the run must have ended."""
        self.begin_run(phases, loss_parts, scheduled)
        for when, event in events:
            self.push(event, when)
        self.end_run()

    def end_run(self) -> None:
        self.timer.stop()
        self.drain()
        self.live_charts.redraw_all()

    def log(self, message: str, level: str = "info", when: float | None = None) -> None:
        """Append a line, stamped with `when` (seconds since the epoch) or now."""
        self.log_view.add(message, level, when)

    def drain(self) -> None:
        """Handle every buffered event, then redraw the charts that changed."""
        if not self._pending:
            return
        last_step: Step | None = None
        while self._pending:
            arrived, event = self._pending.popleft()
            kind = event.kind
            if kind == "step":
                self._on_step(event)
                last_step = event
                continue
            if last_step is not None:  # progress text only for the last of a run of steps
                self.run_progress.show_step(last_step, arrived)
                last_step = None
            handler = getattr(self, f"_on_{kind}", None)
            if handler is not None:
                handler(event, arrived)
        if last_step is not None:
            self.run_progress.show_step(last_step, time.monotonic())
        self._ticks += 1
        if self._setup_tick:  # the run's set-up was laid out this tick: draw on the next one
            self._setup_tick = False
        elif not self.timer.isActive():  # the run has ended: bring every chart up to date
            self.live_charts.redraw_all()
        else:
            self.live_charts.redraw_next(self._ticks)

    # ------------------------------------------------------------ events, by kind

    def _when(self, arrived: float) -> float | None:
        """The log's stamp for an event: its own time in a replay, else now."""
        return arrived if self._wall_clock else None

    def _on_run_started(self, event: RunStarted, arrived: float) -> None:
        self._setup_tick = True
        self.live_charts.hold()
        self.run_progress.start(event.plan, arrived)
        self.live_charts.lay_out(event.plan)
        # a replayed run's events carry the wall-clock time they were written at
        self._wall_clock = event.replay
        self.log(f"Run #{event.run_id} started on {event.device}: "
                 + ", ".join(f"{p.name} {p.epochs} epochs" for p in event.plan.phases),
                 when=self._when(arrived))

    def _on_phase_started(self, event: PhaseStarted, arrived: float) -> None:
        self.run_progress.phase_started(event.phase, arrived)
        self.live_charts.break_step_curves()

    def _on_phase_finished(self, event: PhaseFinished, arrived: float) -> None:
        self.run_progress.phase_finished(event.phase, arrived)

    def _on_step(self, event: Step) -> None:
        self.steps_seen = event.run_step
        self.live_charts.add_step(event)

    def _on_epoch(self, event: Epoch, _arrived: float) -> None:
        self.live_charts.add_epoch(event)

    def _on_tested(self, event: PhaseTested, _arrived: float) -> None:
        self.summary_card.show_tested(event.phase, event.accuracy)

    def _on_log(self, event: Log, arrived: float) -> None:
        self.log(event.message, event.level, when=self._when(arrived))

    def _on_run_finished(self, event: RunFinished, arrived: float) -> None:
        status = event.status
        took = self.run_progress.finish(status, arrived)
        level = "info" if status == "completed" else "warning" if status == "stopped" else "error"
        self.log(f"Run {status} after {took}", level, when=self._when(arrived))
