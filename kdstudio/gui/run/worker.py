"""The engine run's worker: the engine runs in a QObject worker on a QThread that
`kdstudio.gui.tasks.worker_thread` makes (the same one every background task gets).

A run is not a `Task` of gui/tasks.py: it streams batched events for its whole length,
pauses (the engine's `should_stop` blocks), and tells a refused config apart from a result,
so it keeps a worker of its own; only its thread comes from the helper.

Engine events cross to the GUI thread as `Signal(object)` (in small batches: one queued call
per step would keep the GUI thread and the GIL busy); widgets are never touched here.
Stop and pause are plain `threading.Event`s that the engine polls through `should_stop`
between batches; a pause is `should_stop` blocking until resume (or stop).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from kdstudio.core.config import RunConfig
from kdstudio.core.events import Event, RunStarted, Step
from kdstudio.gui.tasks import worker_thread

PAUSE_POLL_S = 0.05
BATCH_S = 0.05  # step events cross to the GUI thread at most ~20 times a second


def training_threads() -> int:
    """Leave one CPU core to the GUI thread while training (returns the previous count).

    On a small machine the intra-op threads would otherwise take every core and the window
    would stutter; with one core fewer the small models trained here lose next to nothing.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, min(previous, (os.cpu_count() or 2) - 1)))
    return previous


def restore_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)


class RunFlags:
    """Stop and pause requests shared by the GUI thread and the worker (plain Python)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.go = threading.Event()  # cleared while paused
        self.go.set()
        self.blocked = threading.Event()  # set while the worker sits in a pause
        self.run_step = 0  # last step the engine reported (written by the worker only)

    def should_stop(self) -> bool:
        """Called by the engine between batches; blocks while paused."""
        if not self.go.is_set():
            self.blocked.set()
            while not self.go.wait(PAUSE_POLL_S):
                pass
            self.blocked.clear()
        return self.stop.is_set()

    def request_stop(self) -> None:
        self.stop.set()
        self.go.set()


class RunWorker(QObject):
    """Runs one config through `kdstudio.core.engine.run` with its own Store (own thread),
    or, given `resume_id`, goes on with that saved run through `engine.resume`."""

    events = Signal(object)  # list of engine events (core.events), oldest first
    problems = Signal(object)  # list[str]: the engine refused the config, nothing was run
    finished = Signal(object)  # dict(run_id, status, error, summary), or None if refused

    def __init__(self, config: RunConfig, db_path: Path, flags: RunFlags,
                 resume_id: int | None = None) -> None:
        super().__init__()  # no parent: it is moved to the worker thread
        self.config = config
        self.resume_id = resume_id
        self.db_path = db_path
        self.flags = flags
        self._outbox: list[Event] = []
        self._sent = 0.0
        self.run_id: int | None = None  # once the engine has created the run's row

    def _emit(self, event: Event) -> None:
        """Collect events; send them in batches (a step alone waits up to BATCH_S)."""
        self._outbox.append(event)
        if isinstance(event, RunStarted):
            self.run_id = event.run_id
        elif isinstance(event, Step):
            self.flags.run_step = event.run_step
            if time.monotonic() - self._sent < BATCH_S:
                return
        self._flush()

    def _flush(self) -> None:
        if self._outbox:
            batch, self._outbox = self._outbox, []
            self.events.emit(batch)
        self._sent = time.monotonic()

    def _should_stop(self) -> bool:
        if not self.flags.go.is_set():
            # the window sees every step the engine has published before the pause (it
            # publishes steps in batches, at most 0.1 s after they ran)
            self._flush()
        return self.flags.should_stop()

    @Slot()
    def run(self) -> None:
        result: dict[str, Any] | None = None
        try:
            result = self._run()
            if result is not None and result["status"] == "failed" and self.run_id is not None:
                # the engine could not record its end (its history refused the write): the
                # row must not stay "running" while the window lives
                result = self._mark_failed(result["error"] or "failed") | {
                    "summary": result["summary"]}
        except Exception as error:  # noqa: BLE001 - a message for the user, never a traceback
            reason = f"{type(error).__name__}: {error}"
            if self.run_id is None:
                self.problems.emit([f"could not run: {reason}"])
            else:  # the run's row exists: it must not stay "running"
                result = self._mark_failed(reason)
        finally:
            self.finished.emit(result)

    def _mark_failed(self, reason: str) -> dict[str, Any]:
        """End the started run as failed after an error outside the engine's own handling."""
        from kdstudio.core.store import Store

        assert self.run_id is not None
        status: str = "failed"
        error: str | None = reason
        try:
            with Store(self.db_path) as store:
                row = store.get_run(self.run_id)
                if row is not None and row["status"] == "running":
                    store.finish_run(self.run_id, "failed", reason)
                elif row is not None:  # it had ended: the history says how
                    status, error = row["status"], row["error"]
        except Exception as failure:  # noqa: BLE001 - the history itself failed: say both
            error = f"{reason}; the history could not record it ({failure})"
        return {"run_id": self.run_id, "status": status, "error": error, "summary": {}}

    def _run(self) -> dict[str, Any] | None:
        from kdstudio.core.config import ConfigError
        from kdstudio.core.engine import resume, run
        from kdstudio.core.store import Store

        try:
            store = Store(self.db_path)
        except Exception as error:  # noqa: BLE001 - any open failure is a bad history file
            self.problems.emit([f"history database {self.db_path}: cannot open ({error})"])
            return None
        threads = training_threads()
        try:
            if self.resume_id is None:
                result = run(self.config, store, self._emit, self._should_stop)
            else:
                result = resume(self.resume_id, store, self._emit, self._should_stop)
        except ConfigError as error:
            self.problems.emit(list(error.problems))
            return None
        finally:
            self._flush()
            store.close()
            restore_threads(threads)
        return {"run_id": result.run_id, "status": result.status, "error": result.error,
                "summary": result.summary}


class RunController(QObject):
    """Owns the worker thread of the current run: start, pause, resume, stop, wait.

    Lives in the GUI thread; its signals are delivered there.
    """

    event = Signal(object)
    problems = Signal(object)
    finished = Signal(object)  # the worker's result dict, or None; the thread has ended

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.thread: QThread | None = None
        self.worker: RunWorker | None = None
        self.flags = RunFlags()
        self._result: dict[str, Any] | None = None
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    @property
    def paused(self) -> bool:
        return self._running and not self.flags.go.is_set()

    def start(self, config: RunConfig, db_path: Path, resume_id: int | None = None) -> None:
        """Run `config`, or go on with the saved run `resume_id` (whose config it is)."""
        if self._running:
            raise RuntimeError("a run is already in progress")
        self.flags = RunFlags()
        self._result = None
        worker = RunWorker(config, db_path, self.flags, resume_id)
        worker.events.connect(self._relay)
        worker.problems.connect(self.problems)
        worker.finished.connect(self._keep_result)
        thread = worker_thread(worker, "kdstudio-run", worker.finished)
        thread.finished.connect(self._thread_finished)
        self.thread, self.worker = thread, worker
        self._running = True
        thread.start()

    @Slot(object)
    def _relay(self, batch: list[Event]) -> None:
        for event in batch:
            self.event.emit(event)

    @Slot(object)
    def _keep_result(self, result: dict[str, Any] | None) -> None:
        self._result = result

    @Slot()
    def _thread_finished(self) -> None:
        if self.thread is not None:
            self.thread.wait()
        self._running = False
        self.worker = None
        self.finished.emit(self._result)

    def pause(self) -> None:
        if self._running:
            self.flags.go.clear()

    def resume(self) -> None:
        self.flags.go.set()

    def stop(self) -> None:
        self.flags.request_stop()

    def thread_alive(self) -> bool:
        return self.thread is not None and self.thread.isRunning()

    def stop_and_wait(self, timeout_ms: int) -> bool:
        """Ask the run to stop and block until its thread has ended; False on timeout."""
        if not self.thread_alive():
            return True
        self.stop()
        assert self.thread is not None
        return self.thread.wait(timeout_ms)
