"""The live view's five charts: loss, accuracy, agreement, learning rate and schedules,
throughput; their curves for a run, the points of its events, and when each is redrawn.
Until a first run is shown they say so (a note over the grid), without their legends."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from kdstudio.core.events import Epoch, Step
from kdstudio.core.plan import RunPlan
from kdstudio.gui.widgets.charts import ChartPanel
from kdstudio.gui.widgets.colours import (
    PART_COLORS,
    PART_LABELS,
    PHASE_COLORS,
    PHASE_LABELS,
    SCHEDULE_COLORS,
    SCHEDULE_LABELS,
)

RELEASE_MS = 30  # one held-back chart repaints per 30 ms after a run is set up
DEFAULT_PARTS = ("ce", "kd")
OTHER_PART_COLOR = "#9467bd"
EMPTY_NOTE = ("<b>No run yet</b><br>Press Start to train, or open a run from the History: "
              "its curves appear here.")
EMPTY_NOTE_WIDTH = 420


class LiveCharts(QWidget):
    """The charts in their grid. Points are added as events come (`add_step`,
    `add_epoch`); a chart shows them when it is redrawn."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loss_chart = ChartPanel("Loss per step", "run step", "loss", "lossPlot", True,
                                     y_range="steps")
        self.loss_chart.set_log_y(True)  # the KD term starts T² times larger than the rest
        self.accuracy_chart = ChartPanel("Accuracy per epoch", "epoch", "accuracy",
                                         "accuracyPlot", legend="top", y_range="fraction")
        self.agreement_chart = ChartPanel("Agreement", "epoch", "agreement",
                                          "agreementPlot", legend="top",
                                          y_range="fraction")
        self.lr_chart = ChartPanel("Learning rate and schedules", "run step", "value",
                                   "lrPlot", legend="top", y_range="steps")
        self.speed_chart = ChartPanel("Throughput", "run step", "samples/s", "speedPlot", True,
                                      legend=None, y_range="steps")
        self.charts = [self.loss_chart, self.accuracy_chart, self.agreement_chart,
                       self.lr_chart, self.speed_chart]
        self.step_charts = (self.loss_chart, self.lr_chart, self.speed_chart)
        self.epoch_charts = (self.accuracy_chart, self.agreement_chart)
        self._curves_for: tuple[tuple[str, ...], ...] | None = None
        # charts whose painting is held back after a change that dirties them all at once
        self._held: list[ChartPanel] = []
        self._release_timer = QTimer(self)
        self._release_timer.setInterval(RELEASE_MS)
        self._release_timer.timeout.connect(self._release_one_chart)

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.loss_chart, 0, 0, 1, 3)
        grid.addWidget(self.accuracy_chart, 0, 3, 1, 3)
        grid.addWidget(self.agreement_chart, 1, 0, 1, 2)
        grid.addWidget(self.lr_chart, 1, 2, 1, 2)
        grid.addWidget(self.speed_chart, 1, 4, 1, 2)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)
        self.empty_note = QLabel(EMPTY_NOTE, self)
        self.empty_note.setObjectName("chartsEmptyNote")
        self.empty_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_note.setWordWrap(True)
        self.empty = False
        self.set_empty(True)

    def set_empty(self, empty: bool) -> None:
        """No run shown yet: the note over the charts, their legends hidden."""
        self.empty = empty
        self.empty_note.setVisible(empty)
        for chart in self.charts:
            if chart.legend is not None:
                chart.legend.setVisible(not empty and bool(chart.legend.entries))
        if empty:
            self.empty_note.raise_()
            self._place_note()

    def _place_note(self) -> None:
        """In the middle of the loss chart, the first a run draws."""
        area = self.loss_chart.geometry()
        width = min(EMPTY_NOTE_WIDTH, max(area.width() - 40, 100))
        note = self.empty_note
        note.resize(width, note.heightForWidth(width))
        inside = note.contentsRect()  # less the style sheet's border and padding
        height = note.heightForWidth(inside.width()) + note.height() - inside.height() + 2
        note.setGeometry(area.center().x() - width // 2, area.center().y() - height // 2,
                         width, height)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if self.empty:
            self._place_note()

    def set_smoothing(self, weight: float) -> None:
        for chart in self.charts:
            chart.set_smoothing(weight)

    # ------------------------------------------------------------ a run's curves

    def begin(self, phases: Sequence[str], loss_parts: Sequence[str],
              scheduled: Sequence[str] = ()) -> None:
        """Empty curves for a run of these phases, loss parts and scheduled values."""
        self.hold()
        self.make_curves(tuple(phases), tuple(loss_parts), tuple(scheduled))
        self.set_empty(False)
        # a temperature of 4 and a learning rate of 0.05 share one chart only on a log axis
        self.lr_chart.set_log_y(bool(scheduled))

    def make_curves(self, phases: tuple[str, ...], parts: tuple[str, ...],
                    scheduled: tuple[str, ...] = ()) -> None:
        """Curves and phase markers, made before a run (and reused when the next run has
        the same phases, parts and schedules): creating plot items mid-run would cost the
        GUI thread a visible pause."""
        if self._curves_for == (phases, parts, scheduled):
            for chart in self.charts:
                chart.reset()
            return
        self._curves_for = (phases, parts, scheduled)
        for chart in self.charts:
            chart.clear()
        for part in ("total", *parts):
            self.loss_chart.add_series(PART_LABELS.get(part, part),
                                       PART_COLORS.get(part, OTHER_PART_COLOR))
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
        for chart in self.step_charts:
            for phase in phases:
                chart.add_marker(0.0, PHASE_LABELS[phase], labelled=chart is self.loss_chart)
            chart.place_markers([])  # shown where the phases start, once that is known

    def lay_out(self, plan: RunPlan) -> None:
        """Axes over the whole run and phase markers where each phase starts."""
        phases = plan.phases
        for chart in self.step_charts:
            chart.set_x_range(0, max(plan.run_steps, 1))
            starts = [0.5]
            for phase in phases[:-1]:
                starts.append(starts[-1] + phase.steps)
            chart.place_markers(starts)
        epochs = [p.epochs for p in phases] or [1]
        for chart in self.epoch_charts:
            chart.set_x_range(0.5 if min(epochs) > 0 else -0.5, max(max(epochs), 1) + 0.5)

    def break_step_curves(self) -> None:
        """A new phase starts: its first step is not joined to the last one's."""
        for chart in self.step_charts:
            for name in chart.series:
                chart.gap(name)

    # ------------------------------------------------------------ points

    def add_step(self, event: Step) -> None:
        x = event.run_step
        values = event.values
        for key, value in values.items():
            if key.startswith("loss/"):
                part = key.split("/", 1)[1]
                name = PART_LABELS.get(part, part)
                if name not in self.loss_chart.series:
                    self.loss_chart.add_series(name, PART_COLORS.get(part, OTHER_PART_COLOR))
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

    def add_epoch(self, event: Epoch) -> None:
        phase, values = event.phase, event.values
        label = PHASE_LABELS.get(phase, phase)
        if "val/acc" in values and f"{label} val" in self.accuracy_chart.series:
            self.accuracy_chart.append(f"{label} val", event.epoch, values["val/acc"])
        if "train/acc" in values and f"{label} train" in self.accuracy_chart.series:
            self.accuracy_chart.append(f"{label} train", event.epoch, values["train/acc"])
        if "val/agreement" in values and label in self.agreement_chart.series:
            self.agreement_chart.append(label, event.epoch, values["val/agreement"])

    # ------------------------------------------------------------ drawing

    def redraw_all(self) -> None:
        for chart in self.charts:
            chart.redraw()

    def redraw_next(self, tick: int) -> None:
        """Redraw one chart for this timer tick (a paint is ~15 ms): the loss chart every
        other tick, the rest take turns in between."""
        if tick % 2:
            self.loss_chart.redraw()
        else:
            others = self.charts[1:]
            others[(tick // 2) % len(others)].redraw()

    def hold(self) -> None:
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
