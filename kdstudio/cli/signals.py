"""Signals while a command runs: SIGINT, SIGTERM and SIGHUP end it with one line and
128 + N; during a run the first one stops the run (kept as `stopped`). A reader of our
output that went away (`| head`) ends the command quietly with 141."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any, NoReturn

from kdstudio.cli.exits import EXIT_BROKEN_PIPE, EXIT_SIGNAL_BASE

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def exit_now(signum: int, message: str) -> NoReturn:
    """One line on stderr and exit 128 + signum, raising nothing: an exception raised into
    an import of torch or numpy can leave them half-loaded or abort the interpreter. What
    SQLite had not committed is rolled back by SQLite itself."""
    with contextlib.suppress(OSError):
        os.write(sys.stderr.fileno(), f"kdstudio: {message}\n".encode())
    os._exit(EXIT_SIGNAL_BASE + signum)


class ExitOnSignal:
    """While a command runs, SIGINT, SIGTERM and SIGHUP end it at once with one line."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> ExitOnSignal:
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)

    @staticmethod
    def _handle(signum: int, _frame: Any) -> None:
        exit_now(signum, f"{signal.Signals(signum).name}: interrupted")


class StopSignals(ExitOnSignal):
    """SIGINT, SIGTERM and SIGHUP during `kdstudio run`.

    Before the run starts a signal ends the command at once (nothing is saved yet). Once it
    runs, the first signal asks the engine to stop between two batches: the run ends
    `stopped`, everything so far kept. A second one ends the process at once; the run is
    then marked `interrupted` the next time the history is opened. The caller sets
    `run_id` when the run has started.
    """

    def __init__(self) -> None:
        super().__init__()
        self.signum: int | None = None
        self.run_id: int | None = None

    def __call__(self) -> bool:
        """The engine's should_stop."""
        return self.signum is not None

    def _handle(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.run_id is None:
            exit_now(signum, f"{name}: stopped before the run started; nothing saved")
        if self.signum is not None:
            exit_now(signum, f"{name} again: ended at once; run {self.run_id} keeps its "
                             "metrics so far and will show as interrupted")
        self.signum = signum


def reader_gone() -> int:
    """stdout's reader closed the pipe (`kdstudio runs | head`): end quietly, as a tool killed
    by SIGPIPE would, without the interpreter complaining while it flushes stdout."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE
