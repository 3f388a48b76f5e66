"""While the engine loads, the workbench shows a disabled skeleton of the setup form with a
"Loading PyTorch…" note, Start disabled with its reason and the charts' empty state; the
real form replaces it when the engine is in."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent, QPoint
from PySide6.QtWidgets import QApplication, QComboBox, QGroupBox, QLineEdit, QWidget

from kdstudio.core.config.fields import GROUPS
from kdstudio.gui import MainWindow
from kdstudio.gui.setup.skeleton import LOADING_NOTE, SetupSkeleton, skeleton_rows
from tests.gui.conftest import settings_in


@pytest.fixture
def loading_window(qtbot, tmp_path: Path) -> Iterator[MainWindow]:
    """A window as `main()` shows it, before the engine is loaded."""
    win = MainWindow(db_path=tmp_path / "history.db", settings=settings_in(tmp_path),
                     defer_engine=True)
    win.confirm_close = True
    qtbot.addWidget(win)
    win.resize(1024, 700)
    win.show()
    qtbot.waitExposed(win)
    yield win


def test_the_skeleton_shows_the_form_disabled_with_the_loading_note(loading_window):
    win = loading_window
    assert win.setup is None
    skeleton = win.setup_stack.currentWidget()
    assert isinstance(skeleton, SetupSkeleton) and skeleton.isVisible()
    assert win.loading_label is skeleton.note and skeleton.note.isVisible()
    assert skeleton.note.text().startswith(f"<b>{LOADING_NOTE}</b>")
    assert LOADING_NOTE == "Loading PyTorch…"
    titles = [box.title() for box in skeleton.body.findChildren(QGroupBox)]
    assert titles == list(GROUPS.values())
    assert {"Name", "Dataset", "Batch size", "Architecture", "Method", "Learning rate",
            "Student epochs"} <= set(skeleton.captions)
    inputs = skeleton.body.findChildren(QLineEdit) + skeleton.body.findChildren(QComboBox)
    assert len(inputs) >= 15
    assert not skeleton.body.isEnabled()
    assert not any(widget.isEnabled() for widget in inputs)
    assert not skeleton.more.button.isEnabled()
    dataset = next(box for box in skeleton.body.findChildren(QComboBox)
                   if box.currentText() == "digits")  # the default config's values
    assert dataset.count() == 1


def test_start_is_disabled_with_its_reason_while_loading(loading_window):
    win = loading_window
    assert not win.start_button.isEnabled()
    assert "PyTorch" in win.start_button.toolTip()
    assert not win.sweep_button.isEnabled()
    assert not win.presets_menu.isEnabled() and not win.open_action.isEnabled()


def test_the_note_counts_the_seconds(loading_window):
    skeleton = loading_window.skeleton
    skeleton.started -= 2.0  # as if the window had been shown two seconds ago
    skeleton.show_elapsed()
    seconds = float(re.search(r"</b> (\d+\.\d) s", skeleton.note.text()).group(1))
    assert 2.0 <= seconds < 60.0
    assert skeleton.timer.isActive()


def test_the_charts_show_an_empty_state_not_placeholder_legends(loading_window, qtbot):
    live = loading_window.live
    charts = live.live_charts
    assert charts.empty and charts.empty_note.isVisible()
    assert "No run yet" in charts.empty_note.text()
    assert all(not chart.legend.isVisible() for chart in live.charts
               if chart.legend is not None)
    # the note lies inside the loss chart, not across two charts
    assert live.loss_chart.geometry().contains(charts.empty_note.geometry())
    live.begin_run(("teacher", "kd"), ("ce", "kd"))
    assert not charts.empty and not charts.empty_note.isVisible()
    assert live.loss_chart.legend.isVisible() and live.accuracy_chart.legend.isVisible()
    live.end_run()


def test_the_real_form_replaces_the_skeleton_when_the_engine_is_in(loading_window, qtbot):
    win = loading_window
    skeleton = win.skeleton
    first_box = skeleton.body.findChildren(QGroupBox)[0]
    before = (first_box.title(), first_box.mapTo(win, QPoint(0, 0)), first_box.width())
    with qtbot.waitSignal(win.engine_ready, timeout=30_000):
        win.load_engine()
    qtbot.waitUntil(lambda: win.setup.isVisible())
    QApplication.processEvents()
    real_box = win.setup.scroll.widget().findChildren(QGroupBox)[0]
    # the form's first box stays where the skeleton had it: no jump at the top
    assert (real_box.title(), real_box.mapTo(win, QPoint(0, 0)), real_box.width()) == before
    assert win.setup is not None
    assert win.setup_stack.currentWidget() is win.setup and win.setup.isVisible()
    assert win.setup.isEnabled() and win.setup.scroll.widget().isEnabled()
    assert not skeleton.timer.isActive()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert win.findChild(QWidget, "setupSkeleton") is None
    assert win.setup_stack.count() == 1
    qtbot.waitUntil(win.start_button.isEnabled, timeout=15_000)
    assert win.start_button.toolTip() == "Start the run (Ctrl+R)"
    assert win.presets_menu.isEnabled()


def test_an_engine_that_fails_to_load_is_said_in_the_note(loading_window):
    win = loading_window
    win._import_failed(ImportError("No module named 'torch'"))
    note = win.skeleton.note.text()
    assert note.startswith("Could not load the training engine:")
    assert "ImportError: No module named 'torch'" in note and "pip install torch" in note
    assert not win.skeleton.timer.isActive()
    win.skeleton.show_elapsed()  # a late tick does not hide the error
    assert win.skeleton.note.text() == note
    assert not win.start_button.isEnabled()


def test_the_skeleton_rows_are_the_tables_always_shown_rows():
    keys = [field.key for field in skeleton_rows()]
    assert keys[:3] == ["name", "seed", "device"]
    assert "data.params" not in keys and "distill.student_layer" not in keys
    assert "optim.epochs" in keys and "teacher.checkpoint" in keys


def test_the_skeleton_is_built_without_importing_torch():
    code = ("import sys, time; from PySide6.QtWidgets import QApplication; "
            "app = QApplication([]); from kdstudio.gui import MainWindow; "
            "import tempfile, pathlib; folder = pathlib.Path(tempfile.mkdtemp()); "
            "from PySide6.QtCore import QSettings; "
            "s = QSettings(str(folder / 's.ini'), QSettings.Format.IniFormat); "
            "w = MainWindow(db_path=folder / 'h.db', settings=s, defer_engine=True); "
            "from kdstudio.gui.setup.skeleton import SetupSkeleton; "
            "t = time.perf_counter(); SetupSkeleton(); ms = (time.perf_counter() - t) * 1000; "
            "print(type(w.setup_stack.currentWidget()).__name__, 'torch' in sys.modules, ms)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    shown, torch_loaded, ms = out.stdout.split()
    assert (shown, torch_loaded) == ("SetupSkeleton", "False")
    assert float(ms) < 500  # milliseconds, even on a loaded machine
