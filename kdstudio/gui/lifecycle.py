"""How the window process starts and ends: a display to open on, and quit signals.

`missing_display()` is asked before the QApplication exists: on Linux without a display Qt
aborts the process (signal 6) instead of failing. `QuitOnSignals` turns SIGINT (Ctrl-C),
SIGTERM and SIGHUP into closing the window as the Quit menu would, without asking: a
running run is stopped (status `stopped`, everything so far kept), then the process exits
with 128 + the signal's number. Python runs signal handlers only while Python code runs,
so a timer wakes the interpreter a few times a second while Qt's event loop waits.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from kdstudio.core.events import Step

DISPLAY_PLATFORMS = {"", "xcb", "wayland", "wayland-egl"}
QUIT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))
WAKE_MS = 200


def missing_display(env: Mapping[str, str] | None = None,
                    platform: str | None = None) -> str | None:
    """The line to print when the window has no display to open on, else None."""
    env = os.environ if env is None else env
    if not (platform or sys.platform).startswith("linux"):
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    wanted = {name.split(":", 1)[0].strip()
              for name in env.get("QT_QPA_PLATFORM", "").split(";")}
    if not wanted <= DISPLAY_PLATFORMS:  # offscreen, vnc, eglfs...: no display needed
        return None
    return ("kdstudio: no display to open the window on (neither DISPLAY nor "
            "WAYLAND_DISPLAY is set); train without a window with `kdstudio run "
            "CONFIG.toml`, or set QT_QPA_PLATFORM=offscreen")


class QuitOnSignals(QObject):
    """Close the watched window (stopping its run) and quit the application on a quit
    signal; one received before `watch` closes the window as soon as it is watched."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self.app = app
        self.window: QWidget | None = None
        self.received: int | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(WAKE_MS)
        self.timer.timeout.connect(self._check)  # also lets the handlers below run
        self.timer.start()
        for number in QUIT_SIGNALS:
            signal.signal(number, self._on_signal)

    def watch(self, window: QWidget) -> None:
        self.window = window
        if self.received is not None:
            QTimer.singleShot(0, self._close_window)

    def _on_signal(self, number: int, _frame: Any) -> None:
        if self.received is None:
            self.received = number
            QTimer.singleShot(0, self._close_window)

    def _close_window(self) -> None:
        if self.window is None:
            return  # closed as soon as it is watched
        self.app.setQuitOnLastWindowClosed(False)  # quit here, with the signal's status
        self.window.confirm_close = True  # a signal does not wait for a "stop?" answer
        self.window.close()  # if the run needs longer to stop, it closes when it has
        self._check()

    def _check(self) -> None:
        if self.received is not None and self.window is not None \
                and not self.window.isVisible():
            self.timer.stop()
            self.app.exit(self.exit_code(0))

    def exit_code(self, code: int) -> int:
        """The process's exit status: 128 + the signal's number after a quit signal."""
        return code if self.received is None else 128 + self.received


def start_config_when_ready(window: Any, config_path: str, probe: str | None) -> None:
    """Test and bench hook (`KDSTUDIO_START_CONFIG`): load this config into the form once
    the engine is ready and press Start; with a probe file, note `training <run id>` at
    the run's first step."""
    def training(event: Any) -> None:
        if isinstance(event, Step) and probe and not noted:
            noted.append(True)
            with open(probe, "a", encoding="utf-8") as handle:
                handle.write(f"training {window.last_run_id}\n")

    noted: list[bool] = []

    def start() -> None:
        window.open_config(config_path)
        window.controller.event.connect(training)
        window.start_run()

    window.engine_ready.connect(start)
