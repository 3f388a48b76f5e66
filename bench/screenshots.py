"""Regenerate the README's screenshots of the real window (run under Xvfb).

    QT_QPA_PLATFORM=xcb DISPLAY=:97 python bench/screenshots.py OUTDIR

Three tiny synthetic runs differing only in seed: the workbench is grabbed mid-run (light,
then dark during the second run), then History, Compare (seeds grouped) and Dark knowledge.
"""
from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import QApplication, QLineEdit

from kdstudio.gui import MainWindow
from kdstudio.gui.setup.inputs import NumberEdit
from kdstudio.gui.widgets.theme import theme
from tests.gui.conftest import find, set_tiny_run, settings_in


def wait_until(app: QApplication, done: Callable[[], bool], limit_s: float = 180.0) -> None:
    """Process events until `done()` holds or `limit_s` passes."""
    deadline = time.time() + limit_s
    while not done() and time.time() < deadline:
        app.processEvents()
        time.sleep(0.02)


def settle(app: QApplication, seconds: float = 0.6) -> None:
    wait_until(app, lambda: False, seconds)


def run_and_grab(app: QApplication, win: MainWindow, seed: int, grab: Path | None) -> None:
    """Run one seed; with `grab`, save the window a while into the last (KD) phase."""
    set_tiny_run(win, teacher_epochs=6, epochs=30, samples=6000, batch_size=16)
    win.setup.data_params.widgets["separation"].setValue(1.0)
    find(win, NumberEdit, "seedSpin").setValue(seed)
    find(win, QLineEdit, "runNameEdit").setText(f"synthetic-kd-seed{seed}")
    phases: list[str] = []
    finished: list[object] = []

    def count(event: object) -> None:
        events = event if isinstance(event, list) else [event]
        phases.extend(e.phase for e in events if getattr(e, "kind", "") == "phase_started")

    win.controller.event.connect(count)
    win.run_finished.connect(finished.append)
    assert win.start_run(), "the form refused the run"
    if grab is not None:
        wait_until(app, lambda: len(phases) >= 3 or bool(finished))
        settle(app, 1.0)
        win.grab().save(str(grab))
    wait_until(app, lambda: bool(finished))
    win.controller.event.disconnect(count)
    win.run_finished.disconnect(finished.append)
    settle(app)


def main(out: Path) -> None:
    app = QApplication(sys.argv[:1])
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp())
    win = MainWindow(db_path=folder / "history.db", settings=settings_in(folder))
    win.confirm_close = True
    win.resize(1600, 1000)
    win.show()
    settle(app)
    run_and_grab(app, win, 1, out / "main-window.png")
    theme().set_mode("dark")
    run_and_grab(app, win, 2, out / "dark-theme.png")
    theme().set_mode("light")
    run_and_grab(app, win, 3, None)

    win.tabs.setCurrentWidget(win.history)
    win.history.reload()
    settle(app, 1.0)
    win.grab().save(str(out / "history.png"))

    win.compare_runs([1, 2, 3])
    win.compare.group_seeds.setChecked(True)
    settle(app, 1.0)
    win.grab().save(str(out / "compare.png"))

    loaded: list[int] = []
    win.dark_knowledge.loaded.connect(loaded.append)
    win.show_dark_knowledge(1)
    wait_until(app, lambda: bool(loaded), 120)
    settle(app, 1.0)
    win.grab().save(str(out / "dark-knowledge.png"))
    win.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/kd-shots"))
