"""`main()`, which `kdstudio` / `kdstudio gui` call: the QApplication, the window's first
paint, then the engine imported in the background.

Torch takes seconds to import, so `main()` shows the window first and imports the engine
in a background task (gui/engine_loading.py); the setup form (which needs the registries)
appears when it is ready. `MainWindow(db_path=...)` without `defer_engine` builds everything
at once (tests). The window itself is in gui/main_window.py.

Bench hook: with `KDSTUDIO_STARTUP_PROBE=<file>` set, `main()` appends `shown <epoch s>`
at the window's first paint (with what the form's place shows: `form=setupSkeleton`) and
`ready <epoch s>` when the form is built, then quits.
With `KDSTUDIO_START_CONFIG=<config.toml>` also set it loads that config, presses Start and
appends `training <run id>` at the first step instead (see gui/lifecycle.py).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

from kdstudio.gui.engine_loading import warm_up_engine
from kdstudio.gui.main_window import APPLICATION, ORGANIZATION, MainWindow

__all__ = ["MainWindow", "main", "warm_up_engine"]


class FirstPaint(QObject):
    """Calls `callback` once, at the first paint of the watched widget."""

    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__()
        self.callback: Callable[[], None] | None = callback

    def eventFilter(self, _watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Paint and self.callback is not None:
            callback, self.callback = self.callback, None
            QTimer.singleShot(0, callback)
        return False


def note_startup(path: str, what: str, form: str = "") -> None:
    """Append `what <epoch s> torch=0|1 [form=<objectName>]` to the startup probe file."""
    shown = f" form={form}" if form else ""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{what} {time.time():.6f} torch={int('torch' in sys.modules)}{shown}\n")


def main(db_path: str | None = None) -> int:
    """Open the window; returns the application's exit code (2: no display to open on,
    128 + N: closed by signal N)."""
    from kdstudio.gui.lifecycle import QuitOnSignals, missing_display, start_config_when_ready

    app = QApplication.instance()
    if app is None:
        problem = missing_display()
        if problem:
            print(problem, file=sys.stderr)
            return 2
        app = QApplication(sys.argv[:1])
    quit_on_signals = QuitOnSignals(app)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    try:
        window = MainWindow(db_path=db_path, defer_engine=True)
    except Exception as error:  # noqa: BLE001 - one clear line, no traceback
        print(f"kdstudio: cannot open the window: {error}", file=sys.stderr)
        return 1
    quit_on_signals.watch(window)
    probe = os.environ.get("KDSTUDIO_STARTUP_PROBE")
    start_config = os.environ.get("KDSTUDIO_START_CONFIG")

    def first_paint() -> None:
        if probe:
            note_startup(probe, "shown", window.setup_stack.currentWidget().objectName())
        window.preload_engine()

    painted = FirstPaint(first_paint)
    window.tabs.installEventFilter(painted)
    QTimer.singleShot(2000, window.preload_engine)  # in case no paint comes (minimised)
    if start_config:
        start_config_when_ready(window, start_config, probe)
    elif probe:
        window.engine_ready.connect(lambda: (note_startup(probe, "ready"),
                                             QTimer.singleShot(0, window.close)))
    app.aboutToQuit.connect(window.stop_for_quit)
    window.show()
    return quit_on_signals.exit_code(app.exec())
