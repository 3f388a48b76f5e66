"""Live view of a run: progress per phase with ETA, charts, log, and the summary card.

Engine events arrive (as signals, in the GUI thread) through `push`, which only buffers them.
A GUI-thread timer (`REFRESH_MS`) drains the buffer and redraws, so the window does the
same small amount of work however fast the training steps come.
"""

from __future__ import annotations

import html
import math
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from kdstudio.core.events import (
    Epoch,
    Event,
    Log,
    PhaseFinished,
    PhaseStarted,
    RunFinished,
    RunStarted,
    Step,
)
from kdstudio.gui.widgets.charts import ChartPanel
from kdstudio.gui.widgets.colours import (
    LOG_COLORS,
    PART_COLORS,
    PART_LABELS,
    PHASE_COLORS,
    PHASE_LABELS,
    SCHEDULE_COLORS,
    SCHEDULE_LABELS,
)

REFRESH_MS = 100  # 10 redraws per second
RELEASE_MS = 30  # one held-back chart repaints per 30 ms after a run is set up
DEFAULT_PARTS = ("ce", "kd")


def clock(seconds: float) -> str:
    """Seconds as h:mm:ss, or m:ss under an hour."""
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def eta(started: float, done: float, now: float) -> float | None:
    """Seconds left when a fraction `done` took `now - started` seconds."""
    if done <= 0 or started <= 0:
        return None
    return (now - started) / done * (1.0 - done)


def _pct(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, (int, float)) and math.isfinite(value) else "—"


class PhaseBar(QWidget):
    """Label + progress bar of one phase, with its own ETA."""

    def __init__(self, phase: str, steps: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.phase = phase
        self.steps = max(steps, 0)
        self.started = 0.0
        self.bar = QProgressBar()
        self.bar.setObjectName(f"progress_{phase}")
        self.bar.setRange(0, max(self.steps, 1))
        self.bar.setValue(0)
        self.bar.setTextVisible(True)
        self.bar.setToolTip(f"Progress of the {PHASE_LABELS.get(phase, phase).lower()} phase")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.set_epoch("")
        layout.addWidget(self.title)
        layout.addWidget(self.bar)
        self.set_text("waiting" if self.steps else "loaded, no training")

    def reset(self, steps: int | None) -> None:
        """Ready for a run with this many steps in the phase; None: not in this run."""
        self.started = 0.0
        self.steps = max(steps or 0, 0)
        self.bar.setRange(0, max(self.steps, 1))
        self.bar.setValue(0)
        self.set_epoch("")
        self.bar.setEnabled(steps is not None)
        self.set_text("not in this run" if steps is None else
                      "waiting" if self.steps else "loaded, no training")

    def set_text(self, text: str) -> None:
        self.bar.setFormat(text)

    def set_epoch(self, text: str) -> None:
        color = PHASE_COLORS.get(self.phase, "#333")
        self.title.setText(f"<b style='color:{color}'>{PHASE_LABELS.get(self.phase, self.phase)}"
                           f"</b>" + (f" <span style='color:#555'>{text}</span>" if text else ""))

    def update_step(self, step: int, now: float) -> None:
        self.bar.setValue(min(step, self.bar.maximum()))
        left = eta(self.started, step / max(self.steps, 1), now)
        text = f"{step / max(self.steps, 1):.0%}"
        if left is not None and step < self.steps:
            text += f" · ETA {clock(left)}"
        self.set_text(text)

    def finish(self, now: float) -> None:
        self.bar.setValue(self.bar.maximum())
        took = f" in {clock(now - self.started)}" if self.started else ""
        self.set_text(f"done{took}" if self.steps else "loaded")


class SummaryCard(QFrame):
    """Test accuracies, KD gain, compression and duration of the finished run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("summaryCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setToolTip("Results of the last run, as stored in the history database")
        grid = QGridLayout(self)
        grid.setContentsMargins(10, 8, 10, 8)
        self.title = QLabel("No run finished yet")
        self.title.setObjectName("summaryTitle")
        self.title.setWordWrap(True)
        grid.addWidget(self.title, 0, 0, 1, 3)
        for column, text in enumerate(("", "parameters", "test accuracy")):
            header = QLabel(f"<i>{text}</i>")
            grid.addWidget(header, 1, column)
        self.cells: dict[str, QLabel] = {}
        for row, (phase, key) in enumerate((("teacher", "Teacher"), ("baseline", "Baseline"),
                                            ("student", "Student")), start=2):
            name = QLabel(PHASE_LABELS[phase])
            name.setStyleSheet(f"color: {PHASE_COLORS[phase]}; font-weight: bold;")
            params, test = QLabel("—"), QLabel("—")
            params.setObjectName(f"summary{key}Params")
            test.setObjectName(f"summary{key}Test")
            for label in (params, test):
                label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(name, row, 0)
            grid.addWidget(params, row, 1)
            grid.addWidget(test, row, 2)
            self.cells[f"{phase}_params"] = params
            self.cells[f"{phase}_test_acc"] = test
        self.gain = QLabel()
        self.gain.setObjectName("summaryKdGain")
        self.compression = QLabel()
        self.compression.setObjectName("summaryCompression")
        self.duration = QLabel()
        self.duration.setObjectName("summaryDuration")
        self.error = QLabel()
        self.error.setObjectName("summaryError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {LOG_COLORS['error']};")
        for row, label in enumerate((self.gain, self.compression, self.duration, self.error),
                                    start=5):
            grid.addWidget(label, row, 0, 1, 3)
        grid.setRowStretch(9, 1)
        self.clear()

    def clear(self) -> None:
        self.title.setText("No run finished yet")
        for label in self.cells.values():
            label.setText("—")
        self.gain.setText("KD gain: —")
        self.compression.setText("Compression: —")
        self.duration.setText("Duration: —")
        self.error.clear()
        self.error.hide()

    def show_run(self, run: dict[str, Any]) -> None:
        """Fill from a history row (`Store.get_run`) or, failing that, an engine summary."""
        summary = run.get("summary") or {}

        def value(key: str) -> Any:
            found = run.get(key)
            return found if found is not None else summary.get(key)

        status = run.get("status", "")
        self.title.setText(f"<b>Run #{run.get('id', run.get('run_id', '?'))}</b> "
                           f"{html.escape(str(run.get('name') or ''))} — <b>{status}</b>")
        for phase in ("teacher", "baseline", "student"):
            acc = value(f"{phase}_test_acc")
            self.cells[f"{phase}_test_acc"].setText(_pct(acc))
            params = value("teacher_params" if phase == "teacher" else "student_params")
            trained = acc is not None
            self.cells[f"{phase}_params"].setText(f"{params:,}" if params and trained else "—")
        gain = value("kd_gain")
        self.gain.setText(f"KD gain: <b>{gain * 100:+.2f} points</b> (student + KD − student "
                          "alone, test)" if gain is not None else "KD gain: —")
        compression = value("compression")
        self.compression.setText(f"Compression: <b>{compression:.1f}×</b> fewer parameters"
                                 if compression else "Compression: —")
        duration = value("duration_s")
        self.duration.setText(f"Duration: {clock(duration)}" if duration is not None
                              else "Duration: —")
        error = run.get("error")
        self.error.setText(f"Error: {error}" if error else "")
        self.error.setVisible(bool(error))


class LiveView(QWidget):
    """Progress, charts, log and summary of the current run."""

    drained = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("liveView")
        self._pending: deque[tuple[float, Event]] = deque()
        self.steps_seen = 0
        self.run_steps = 0
        self.run_started = 0.0
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.drain)
        # charts whose painting is held back after a change that dirties them all at once
        self._held: list[ChartPanel] = []
        self._release_timer = QTimer(self)
        self._release_timer.setInterval(RELEASE_MS)
        self._release_timer.timeout.connect(self._release_one_chart)

        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("progressBar")
        self.progress_bar.setToolTip("Progress of the whole run (all phases) and time left")
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("idle")
        self.phase_row = QHBoxLayout()
        self.phase_row.setSpacing(10)
        # one bar per phase, always there: adding widgets mid-run would re-lay out the window
        self.phase_bars = {phase: PhaseBar(phase, 0) for phase in PHASE_LABELS}
        for bar in self.phase_bars.values():
            bar.reset(None)
            bar.set_text("idle")
            self.phase_row.addWidget(bar, 1)
        self._phases: list[str] = []
        self._ticks = 0
        self._setup_tick = False
        self._wall_clock = False  # True while showing a replay: event times are wall clock
        self._curves_for: tuple[tuple[str, ...], tuple[str, ...]] | None = None

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

        self.loss_chart = ChartPanel("Loss per step", "run step", "loss", "lossPlot", True,
                                     y_range="steps")
        self.loss_chart.set_log_y(True)  # the KD term starts T² times larger than the rest
        self.accuracy_chart = ChartPanel("Accuracy per epoch", "epoch", "accuracy",
                                         "accuracyPlot", legend="bottom", y_range="fraction")
        self.agreement_chart = ChartPanel("Agreement", "epoch", "top-1 agreement with teacher",
                                          "agreementPlot", legend="bottom",
                                          y_range="fraction")
        self.lr_chart = ChartPanel("Learning rate and schedules", "run step", "value",
                                   "lrPlot", legend="bottom", y_range="steps")
        self.speed_chart = ChartPanel("Throughput", "run step", "samples/s", "speedPlot", True,
                                      legend=None, y_range="steps")
        self.charts = [self.loss_chart, self.accuracy_chart, self.agreement_chart,
                       self.lr_chart, self.speed_chart]

        self.log_view = QPlainTextEdit()
        self.log_view.setObjectName("logView")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setToolTip("Messages of the run")
        self.log_view.setPlaceholderText("The run's messages appear here.")
        self.summary_card = SummaryCard()

        self._layout()
        self._on_smoothing(self.smoothing.value())
        self._make_curves(tuple(PHASE_LABELS), DEFAULT_PARTS)  # those of the default preset

    def _layout(self) -> None:
        header = QHBoxLayout()
        overall = QVBoxLayout()
        overall.setSpacing(1)
        overall.addWidget(QLabel("<b>Run</b>"))
        overall.addWidget(self.progress_bar)
        header.addLayout(overall, 2)
        header.addLayout(self.phase_row, 5)
        smooth = QVBoxLayout()
        smooth.setSpacing(1)
        smooth.addWidget(self.smoothing_label)
        smooth.addWidget(self.smoothing)
        header.addLayout(smooth)

        charts = QWidget()
        grid = QGridLayout(charts)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.loss_chart, 0, 0, 1, 3)
        grid.addWidget(self.accuracy_chart, 0, 3, 1, 3)
        grid.addWidget(self.agreement_chart, 1, 0, 1, 2)
        grid.addWidget(self.lr_chart, 1, 2, 1, 2)
        grid.addWidget(self.speed_chart, 1, 4, 1, 2)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)

        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.setObjectName("bottomSplitter")
        bottom.addWidget(self.log_view)
        bottom.addWidget(self.summary_card)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        self.bottom_splitter = bottom

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("liveSplitter")
        self.splitter.addWidget(charts)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 4)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.splitter, 1)

    def _on_smoothing(self, value: int) -> None:
        weight = value / 100.0
        self.smoothing_label.setText(f"Smoothing {weight:.2f}")
        for chart in self.charts:
            chart.set_smoothing(weight)

    # ------------------------------------------------------------ run lifecycle

    def begin_run(self, phases: Sequence[str] = tuple(PHASE_LABELS),
                  loss_parts: Sequence[str] = DEFAULT_PARTS,
                  scheduled: Sequence[str] = ()) -> None:
        """Clear everything for a new run, set up its curves, start the redraw timer.

        Curves and markers are made here, at Start (and reused when the next run has the
        same phases and loss parts), so the timer's ticks during the run only add points:
        creating plot items mid-run would cost the GUI thread a visible pause.
        """
        self._pending.clear()
        self.steps_seen = 0
        self.run_steps = 0
        self._ticks = 0
        self.run_started = time.monotonic()
        self._phases = [p for p in phases if p in PHASE_LABELS]
        for phase, bar in self.phase_bars.items():
            bar.reset(0 if phase in self._phases else None)
            if phase in self._phases:
                bar.set_text("waiting")
        self._hold_charts()
        self._make_curves(tuple(self._phases), tuple(loss_parts), tuple(scheduled))
        # a temperature of 4 and a learning rate of 0.05 share one chart only on a log axis
        self.lr_chart.set_log_y(bool(scheduled))
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("preparing data and models…")
        self.log_view.clear()
        self.summary_card.clear()
        self.summary_card.title.setText("Run in progress…")
        self.timer.start()

    def _make_curves(self, phases: tuple[str, ...], parts: tuple[str, ...],
                     scheduled: tuple[str, ...] = ()) -> None:
        if self._curves_for == (phases, parts, scheduled):
            for chart in self.charts:
                chart.reset()
            return
        self._curves_for = (phases, parts, scheduled)
        for chart in self.charts:
            chart.clear()
        for part in ("total", *parts):
            self.loss_chart.add_series(PART_LABELS.get(part, part),
                                       PART_COLORS.get(part, "#9467bd"))
        self.lr_chart.add_series("lr", "#6a3d9a")
        for key in scheduled:  # what the distillation schedules move, step by step
            self.lr_chart.add_series(SCHEDULE_LABELS.get(key, key),
                                     SCHEDULE_COLORS.get(key, "#8c564b"), dashed=True)
        self.speed_chart.add_series("samples/s", "#17becf")
        for phase in phases:
            label = PHASE_LABELS[phase]
            self.accuracy_chart.add_series(f"{label} val", PHASE_COLORS[phase], symbol="o")
            self.accuracy_chart.add_series(f"{label} train", PHASE_COLORS[phase], dashed=True)
            if phase != "teacher" and "teacher" in phases:
                self.agreement_chart.add_series(label, PHASE_COLORS[phase], symbol="o")
        for chart in (self.loss_chart, self.lr_chart, self.speed_chart):
            for phase in phases:
                chart.add_marker(0.0, PHASE_LABELS[phase] if chart is self.loss_chart else "")
            chart.place_markers([])  # shown where the phases start, once that is known

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
        for chart in self.charts:
            chart.redraw()

    def log(self, message: str, level: str = "info", when: float | None = None) -> None:
        """Append a line, stamped with `when` (seconds since the epoch) or now."""
        color = LOG_COLORS.get(level, LOG_COLORS["info"])
        stamp = time.strftime("%H:%M:%S", time.localtime(when))
        self.log_view.appendHtml(f"<span style='color:#888'>{stamp}</span> "
                                 f"<span style='color:{color}'>{html.escape(message)}</span>")

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
            if last_step is not None:
                self._show_progress(last_step, arrived)
                last_step = None
            handler = getattr(self, f"_on_{kind}", None)
            if handler is not None:
                handler(event, arrived)
        if last_step is not None:
            self._show_progress(last_step, time.monotonic())
        self._ticks += 1
        if self._setup_tick:  # the run's set-up was laid out this tick: draw on the next one
            self._setup_tick = False
            self.drained.emit()
            return
        if not self.timer.isActive():  # the run has ended: bring every chart up to date
            for chart in self.charts:
                chart.redraw()
        elif self._ticks % 2:  # one chart a tick (a paint is ~15 ms): the loss chart every
            self.loss_chart.redraw()  # other tick, the rest take turns in between
        else:
            others = self.charts[1:]
            others[(self._ticks // 2) % len(others)].redraw()
        self.drained.emit()

    def _hold_charts(self) -> None:
        """Let the charts repaint one per RELEASE_MS instead of all in one paint cycle.

        Setting up a run changes every chart's axes; painted together they would keep the
        GUI thread busy for about 100 ms, a visible stutter.
        """
        for chart in self.charts:
            if chart not in self._held:
                chart.setUpdatesEnabled(False)
                self._held.append(chart)
        self._release_timer.start()

    def _release_one_chart(self) -> None:
        if self._held:
            self._held.pop(0).setUpdatesEnabled(True)
        if not self._held:
            self._release_timer.stop()

    def _on_run_started(self, event: RunStarted, arrived: float) -> None:
        self._setup_tick = True
        self._hold_charts()
        self.run_steps = event.run_steps
        self.run_started = arrived
        self.progress_bar.setRange(0, max(self.run_steps, 1))
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("0%")
        phases = event.plan.phases
        steps = {p.name: p.steps for p in phases}
        for phase, bar in self.phase_bars.items():
            bar.reset(steps.get(phase))
        for chart in (self.loss_chart, self.lr_chart, self.speed_chart):
            chart.set_x_range(0, max(self.run_steps, 1))
            starts = [0.5]
            for phase in phases[:-1]:
                starts.append(starts[-1] + phase.steps)
            chart.place_markers(starts)
        epochs = [p.epochs for p in phases] or [1]
        for chart in (self.accuracy_chart, self.agreement_chart):
            chart.set_x_range(0.5 if min(epochs) > 0 else -0.5, max(max(epochs), 1) + 0.5)
        # a replayed run's events carry the wall-clock time they were written at
        self._wall_clock = event.replay
        self.log(f"Run #{event.run_id} started on {event.device}: "
                 + ", ".join(f"{p.name} {p.epochs} epochs" for p in phases),
                 when=arrived if self._wall_clock else None)

    def _on_phase_started(self, event: PhaseStarted, arrived: float) -> None:
        bar = self.phase_bars.get(event.phase)
        if bar is not None:
            bar.started = arrived
            bar.set_text("0%")
        for chart in (self.loss_chart, self.lr_chart, self.speed_chart):
            for name in chart.series:
                chart.gap(name)

    def _on_phase_finished(self, event: PhaseFinished, arrived: float) -> None:
        bar = self.phase_bars.get(event.phase)
        if bar is not None:
            bar.finish(arrived)

    def _on_step(self, event: Step) -> None:
        x = event.run_step
        self.steps_seen = x
        values = event.values
        for key, value in values.items():
            if key.startswith("loss/"):
                part = key.split("/", 1)[1]
                name = PART_LABELS.get(part, part)
                if name not in self.loss_chart.series:
                    self.loss_chart.add_series(name, PART_COLORS.get(part, "#9467bd"))
                self.loss_chart.append(name, x, value)
        for key, value in values.items():
            if key.startswith("sched/"):
                name = SCHEDULE_LABELS.get(key[6:], key[6:])
                if name in self.lr_chart.series:
                    self.lr_chart.append(name, x, value)
        for chart, key, name in ((self.lr_chart, "lr", "lr"),
                                 (self.speed_chart, "samples_per_s", "samples/s")):
            if key in values and name in chart.series:
                chart.append(name, x, values[key])

    def _show_progress(self, event: Step, now: float) -> None:
        bar = self.phase_bars.get(event.phase)
        if bar is not None:
            bar.set_epoch(f"epoch {event.epoch}/{event.epochs}")
            bar.update_step(event.step, now)
        done = event.run_step / max(self.run_steps, 1)
        self.progress_bar.setValue(min(event.run_step, self.progress_bar.maximum()))
        left = eta(self.run_started, done, now)
        self.progress_bar.setFormat(f"{done:.0%}" + (f" · ETA {clock(left)}" if left is not None
                                                     else ""))

    def _on_epoch(self, event: Epoch, _arrived: float) -> None:
        phase, values = event.phase, event.values
        label = PHASE_LABELS.get(phase, phase)
        if "val/acc" in values and f"{label} val" in self.accuracy_chart.series:
            self.accuracy_chart.append(f"{label} val", event.epoch, values["val/acc"])
        if "train/acc" in values and f"{label} train" in self.accuracy_chart.series:
            self.accuracy_chart.append(f"{label} train", event.epoch, values["train/acc"])
        if "val/agreement" in values and label in self.agreement_chart.series:
            self.agreement_chart.append(label, event.epoch, values["val/agreement"])

    def _on_log(self, event: Log, arrived: float) -> None:
        self.log(event.message, event.level,
                 when=arrived if self._wall_clock else None)

    def _on_run_finished(self, event: RunFinished, arrived: float) -> None:
        status = event.status
        if status == "completed":
            self.progress_bar.setValue(self.progress_bar.maximum())
        took = clock(arrived - self.run_started)
        self.progress_bar.setFormat(f"{status} after {took}")
        for bar in self.phase_bars.values():
            if bar.bar.value() < bar.bar.maximum() and status != "completed":
                bar.set_text(f"{bar.bar.value() / bar.bar.maximum():.0%} · {status}")
        level = "info" if status == "completed" else "warning" if status == "stopped" else "error"
        self.log(f"Run {status} after {took}", level,
                 when=arrived if self._wall_clock else None)
