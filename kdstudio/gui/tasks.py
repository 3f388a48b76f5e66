"""The one helper that runs the window's background work (Orange3's shape).

A task is a plain function that takes a `TaskState` as its last argument and returns a
result; it knows nothing of Qt. It may call `state.report(value)` (progress, a message, a
partial result) and should look at `state.cancelled` between steps of long work.

`Task(function, *args, name=...)` runs it on a QThread of its own, Qt's recommended way: a
parentless QObject worker moved to the thread and started by `thread.started`; the worker
is deleted when the thread has finished. Reports, the result and the error cross to the GUI
thread as queued signals of the `Task` (`progress`, `result`, `error`, then `finished` once
the thread has ended), so slots connected there may touch widgets. Once `cancel()` is
called the task's later signals are dropped, as Orange3's `ConcurrentMixin` does.

Every running task is kept in a registry until its thread has ended, so neither the thread
nor the worker is collected while it runs, even if the view that started it is gone.
`shutdown_tasks()` (at quit) asks each to cancel, quits its thread and waits; a thread is
never terminated.

`worker_thread` is the shared primitive: the run's own worker (gui/run/worker.py, which
streams events and pauses) gets its QThread from it as well.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, QTimer, Signal, Slot

SHUTDOWN_WAIT_MS = 60_000
_RUNNING: set[Task] = set()  # the keep-alive registry


class TaskState:
    """What a task function sees of the window: a cancel request in, reports out."""

    def __init__(self, report: Callable[[Any], None]) -> None:
        self._report = report
        self._cancel = threading.Event()

    @property
    def cancelled(self) -> bool:
        """True once the window asked the task to stop (it may then return early)."""
        return self._cancel.is_set()

    def request_cancel(self) -> None:
        self._cancel.set()

    def report(self, value: Any) -> None:
        """Send a progress value, message or partial result to the window."""
        if not self.cancelled:
            self._report(value)


def worker_thread(worker: QObject, name: str, done: Any,
                  parent: QObject | None = None) -> QThread:
    """A new QThread that runs the parentless `worker`'s `run` slot once started.

    The thread quits when the worker's `done` signal fires (connected directly, from the
    worker thread itself: the GUI may be blocked in `wait()` when it does) and the worker is
    deleted once the thread has finished. Connect the worker's result signals, then start.
    """
    thread = QThread(parent)
    thread.setObjectName(name)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    done.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    thread.finished.connect(worker.deleteLater)
    return thread


class _Worker(QObject):
    """Calls the task function in the worker thread and emits what it gave."""

    progress = Signal(object)
    done = Signal(object, object)  # the result, and the exception or None

    def __init__(self, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        super().__init__()  # no parent: it is moved to the worker thread
        self.function = function
        self.args = args
        self.state = TaskState(self.progress.emit)

    @Slot()
    def run(self) -> None:
        result: Any = None
        failure: BaseException | None = None
        try:
            result = self.function(*self.args, self.state)
        except Exception as error:  # noqa: BLE001 - handed to the window's `error` slot
            failure = error.with_traceback(None)  # no frames kept alive across threads
        finally:
            self.done.emit(result, failure)


class Task(QObject):
    """Runs `function(*args, state)` in a background thread; lives in the GUI thread.

    Connect `progress`, `result`, `error` and `finished`, then call `start()`. A task has
    no parent: its thread is its child, and a parent deleted mid-run would take a running
    thread with it.
    """

    progress = Signal(object)  # a value the function passed to state.report
    result = Signal(object)  # the function's return value
    error = Signal(object)  # the exception the function raised
    finished = Signal()  # after result or error: the thread has ended

    def __init__(self, function: Callable[..., Any], *args: Any, name: str) -> None:
        super().__init__()
        self.name = name
        self._worker: _Worker | None = _Worker(function, args)
        self._state = self._worker.state
        self._thread: QThread | None = None
        self._keep: _Worker | None = None
        self._outcome: tuple[Any, BaseException | None] = (None, None)

    @property
    def running(self) -> bool:
        """Started and its thread not yet ended (as the GUI thread has heard)."""
        return self._thread is not None

    @property
    def cancelled(self) -> bool:
        return self._state.cancelled

    def start(self) -> None:
        if self._worker is None:
            raise RuntimeError(f"task {self.name} was already started")
        worker, self._worker = self._worker, None
        worker.progress.connect(self._on_progress)
        worker.done.connect(self._on_done)
        thread = worker_thread(worker, self.name, worker.done, parent=self)
        thread.finished.connect(self._on_thread_finished)
        self._thread = thread
        self._keep = worker  # referenced until the thread has deleted it
        _RUNNING.add(self)
        thread.start()

    def cancel(self) -> None:
        """Ask the function to stop; its later reports and its result are dropped."""
        self._state.request_cancel()

    def wait(self, timeout_ms: int = SHUTDOWN_WAIT_MS) -> bool:
        """Block until the thread has ended; False if it still runs after `timeout_ms`."""
        return self._thread is None or self._thread.wait(timeout_ms)

    @Slot(object)
    def _on_progress(self, value: Any) -> None:
        if not self.cancelled:
            self.progress.emit(value)

    @Slot(object, object)
    def _on_done(self, result: Any, failure: BaseException | None) -> None:
        self._outcome = (result, failure)

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._thread is not None:
            self._thread.wait()  # `finished` comes just before the thread really ends
        self._thread = None  # the QThread stays this task's child until the task goes
        self._keep = None  # the worker was deleted by its thread
        result, failure = self._outcome
        self._outcome = (None, None)
        if not self.cancelled:
            if failure is None:
                self.result.emit(result)
            else:
                self.error.emit(failure)
            self.finished.emit()
        # leave the registry after this slot has returned: this may be the last reference
        QTimer.singleShot(0, lambda: _RUNNING.discard(self))


def running_tasks() -> list[Task]:
    """The tasks started and not yet released (running, or their thread just ended)."""
    return list(_RUNNING)


def shutdown_tasks(timeout_ms: int = SHUTDOWN_WAIT_MS) -> bool:
    """Cancel every running task, quit its thread and wait for it (call at quit);
    False if one still runs after `timeout_ms`. Threads are never terminated."""
    done = True
    for task in running_tasks():
        task.cancel()
        if task._thread is not None:
            task._thread.quit()
        done = task.wait(timeout_ms) and done
    return done
