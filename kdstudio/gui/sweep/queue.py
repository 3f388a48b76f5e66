"""The sweep queue: one row per trial (its overrides, status, metric, run id, elapsed time),
Cancel, and Compare on the sweep's runs.

`run_sweep` goes on in a background task (gui/tasks.py); its events arrive here on the GUI
thread as the task's progress. Cancel sets a flag the sweep polls: no new trial starts and
running trials stop (their runs end `stopped`); trials that never started end `skipped`.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kdstudio.gui.sweep.values import plain
from kdstudio.gui.tasks import Task

COLUMNS = ("#", "Overrides", "Status", "Metric", "Run", "Elapsed", "Error")
GENERIC = {"name", "arch", "method"}  # last key parts that need their table to read
STATUS_COLOURS = {"running": "#1565c0", "completed": "#2e7d32", "failed": "#c62828",
                  "stopped": "#ef6c00", "skipped": "#757575", "queued": "#616161"}


class StopFlag:
    """A request to stop, set on the GUI thread and read by the sweep's `should_stop`."""

    def __init__(self) -> None:
        self.raised = False


def _sweep_task(spec: Any, db_path: Path, workers: int, backend: str, flag: StopFlag,
                state: Any) -> Any:
    """The task: run the sweep, each event reported to the window."""
    from kdstudio.core.sweep import run_sweep

    return run_sweep(spec, db_path, workers=workers, backend=backend, on_event=state.report,
                     should_stop=lambda: flag.raised or state.cancelled)


def short_key(key: str) -> str:
    """`distill.temperature` -> `temperature`; `optim.name` stays `optim.name`."""
    last = key.split(".")[-1]
    return key if last in GENERIC else last


def overrides_text(overrides: dict[str, Any]) -> str:
    return ", ".join(f"{short_key(key)}={plain(value)}" for key, value in overrides.items())


class SweepQueue(QWidget):
    """The trials of the running (or last) sweep; `start(spec, db, workers, backend)`."""

    trial_finished = Signal(object)  # TrialFinished
    sweep_finished = Signal(object)  # SweepResult, or None if the sweep failed
    compare_requested = Signal(object)  # list of run ids

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sweepQueue")
        self.task: Task | None = None
        self.flag = StopFlag()
        self.group_id = ""
        self.rows: dict[int, int] = {}  # trial index -> table row
        self.started_at: dict[int, float] = {}
        self.ended_at: dict[int, float] = {}
        self.run_ids: dict[int, int] = {}
        self.result: Any = None
        self.note = ""  # what SweepStarted said: trials, completed before

        self.title = QLabel("<b>No sweep yet</b>: Run ▸ Sweep… starts one from the form")
        self.title.setObjectName("sweepTitle")
        self.summary = QLabel()
        self.summary.setObjectName("sweepSummary")
        self.summary.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("sweepCancel")
        self.cancel_button.setToolTip("Start no further trial and stop the running ones "
                                      "(their runs end stopped, in the history)")
        self.cancel_button.clicked.connect(self.cancel)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setObjectName("sweepCompare")
        self.compare_button.setToolTip("Open the Compare tab on the sweep's runs")
        self.compare_button.clicked.connect(
            lambda: self.compare_requested.emit(self.finished_run_ids()))
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("sweepTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        bar = QHBoxLayout()
        bar.addWidget(self.title, 1)
        bar.addWidget(self.compare_button)
        bar.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)
        self.clock = QTimer(self)
        self.clock.setInterval(1000)
        self.clock.timeout.connect(self._tick)
        self._update_buttons()

    @property
    def running(self) -> bool:
        return self.task is not None

    # ------------------------------------------------------------ start and cancel

    def start(self, spec: Any, db_path: Path, workers: int, backend: str) -> bool:
        """Run `spec` in the background; False if a sweep is running already."""
        from kdstudio.core.sweep import plan_trials

        if self.running:
            return False
        self.flag = StopFlag()
        self.rows.clear()
        self.started_at.clear()
        self.ended_at.clear()
        self.run_ids.clear()
        self.result = None
        self.note = ""
        self.table.setRowCount(0)
        self.metric_name = spec.metric
        self.table.horizontalHeaderItem(3).setText(spec.metric)
        if spec.method != "optuna":
            for trial in plan_trials(spec):
                self._row(trial.index, trial.overrides)
        self.title.setText(f"<b>Sweep {spec.name or ''}</b> — {spec.method}, {backend}, "
                           f"workers {workers or 'auto'}: starting…")
        self.summary.setText("")
        self.summary.setStyleSheet("")
        task = Task(_sweep_task, spec, Path(db_path), workers, backend, self.flag,
                    name="kdstudio-sweep")
        task.progress.connect(self.on_event)
        task.result.connect(self._done)
        task.error.connect(self._failed)
        task.finished.connect(self._ended)
        self.task = task
        task.start()
        self.clock.start()
        self._update_buttons()
        return True

    def cancel(self) -> None:
        """No new trial; the running ones stop. The rows end when the sweep has returned."""
        if self.running and not self.flag.raised:
            self.flag.raised = True
            self.title.setText(self.title.text().split(":")[0] + ": cancelling…")
            self._update_buttons()

    def stop_and_wait(self, timeout_ms: int) -> bool:
        """Cancel and wait for the sweep's task (the window is closing)."""
        if self.task is None:
            return True
        self.flag.raised = True
        return self.task.wait(timeout_ms)

    # ------------------------------------------------------------ events

    def on_event(self, event: Any) -> None:
        from kdstudio.core.sweep.events import (
            SweepFinished,
            SweepStarted,
            TrialFinished,
            TrialStarted,
        )

        if isinstance(event, SweepStarted):
            self.group_id = event.group_id
            done = f", {event.skipped} completed before" if event.skipped else ""
            self.note = f"{event.total} trials{done}"
            self.title.setText(self.title.text().split(":")[0] + f": {self.note}")
        elif isinstance(event, TrialStarted):
            self._row(event.index, event.overrides)
            self.started_at[event.index] = time.monotonic()
            self._set(event.index, "running", run_id=event.run_id)
        elif isinstance(event, TrialFinished):
            self.ended_at[event.index] = time.monotonic()
            self._set(event.index, event.status, run_id=event.run_id, value=event.value,
                      error=event.error)
            self.trial_finished.emit(event)
        elif isinstance(event, SweepFinished):
            self.group_id = event.group_id

    def _row(self, index: int, overrides: dict[str, Any]) -> int:
        if index in self.rows:
            return self.rows[index]
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.rows[index] = row
        text = overrides_text(overrides)
        cells = (str(index), text, "queued", "", "", "", "")
        for column, value in enumerate(cells):
            item = QTableWidgetItem(value)
            if column != 1:
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            self.table.setItem(row, column, item)
        self.table.item(row, 1).setToolTip("\n".join(f"{k} = {plain(v)}"
                                                     for k, v in overrides.items()))
        self._colour(row, "queued")
        return row

    def _set(self, index: int, status: str, run_id: int | None = None,
             value: float | None = None, error: str | None = None) -> None:
        row = self._row(index, {})
        self.table.item(row, 2).setText(status)
        self.table.item(row, 2).setToolTip(error or "")
        self.table.item(row, 6).setText((error or "").splitlines()[0] if error else "")
        self.table.item(row, 6).setToolTip(error or "")
        self._colour(row, status)
        if run_id is not None:
            self.run_ids[index] = run_id
            self.table.item(row, 4).setText(f"#{run_id}")
        if value is not None:
            self.table.item(row, 3).setText(f"{value:.4f}")
        self._tick()
        self._update_buttons()
        if self.running:
            counts = Counter(self.statuses().values())
            self.summary.setText(" · ".join(f"{counts[name]} {name}" for name in
                                            ("running", "completed", "failed", "queued")
                                            if counts[name]))

    def _colour(self, row: int, status: str) -> None:
        self.table.item(row, 2).setForeground(QColor(STATUS_COLOURS.get(status, "#000000")))

    def _tick(self) -> None:
        now = time.monotonic()
        for index, start in self.started_at.items():
            seconds = self.ended_at.get(index, now) - start
            self.table.item(self.rows[index], 5).setText(f"{seconds:.0f} s")

    # ------------------------------------------------------------ the end

    def statuses(self) -> dict[int, str]:
        """Trial index -> the status its row shows."""
        return {index: self.table.item(row, 2).text() for index, row in self.rows.items()}

    def finished_run_ids(self) -> list[int]:
        return [run_id for _index, run_id in sorted(self.run_ids.items())]

    def _done(self, result: Any) -> None:
        self.result = result
        self.group_id = result.group_id
        why = ("not started: the sweep was cancelled" if self.flag.raised else
               "not run: a completed run of this sweep in the history has these values")
        for index, status in self.statuses().items():
            if status in ("queued", "running"):  # never started, or no end was reported
                self._set(index, "skipped" if status == "queued" else "stopped")
                if status == "queued":
                    self.table.item(self.rows[index], 2).setToolTip(why)
        best = f"; best run #{result.best_run_id}" if result.best_run_id is not None else ""
        self.summary.setText(f"<b>Done:</b> {result.completed} completed, {result.failed} "
                             f"failed, {result.stopped} stopped{best} (ranked by "
                             f"{self.metric_name}); group {result.group_id}")

    def _failed(self, error: BaseException) -> None:
        self.summary.setText(f"<b>The sweep failed:</b> {type(error).__name__}: {error}")
        self.summary.setStyleSheet("color: #c62828;")
        for index, status in self.statuses().items():
            if status in ("queued", "running"):
                self._set(index, "skipped" if status == "queued" else "failed")

    def _ended(self) -> None:
        self.task = None
        self.clock.stop()
        end = "cancelled" if self.flag.raised else "finished"
        self.title.setText(self.title.text().split(":")[0]
                           + (f": {self.note}, {end}" if self.note else f": {end}"))
        self._update_buttons()
        self.sweep_finished.emit(self.result)

    def _update_buttons(self) -> None:
        self.cancel_button.setEnabled(self.running and not self.flag.raised)
        self.compare_button.setEnabled(bool(self.run_ids))
