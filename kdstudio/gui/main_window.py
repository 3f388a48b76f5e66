"""The KD Studio main window: it composes the views into tabs, owns the menus, the settings
and the window's Store, and closes cleanly.

The window is built around a QTabWidget (`mainTabs`); the first tab, "Workbench", holds the
setup form, the run controls and the live view; History, Compare and Dark knowledge follow.
Two helpers owned by the window do the rest: `RunControl` (gui/run_control.py) starts,
pauses, stops and resumes runs and shows their events, `ConfigFiles` (gui/config_files.py)
loads and saves configs and presets. The setup form needs the engine (torch): it is built by
`load_engine`, at once unless `defer_engine` (then `main()` imports the engine in the
background and the form appears when it is ready).
"""

from __future__ import annotations

import contextlib
import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QSplitter, QTabWidget, QWidget

from kdstudio.core.paths import default_db_path
from kdstudio.gui.config_files import ConfigFiles
from kdstudio.gui.engine_loading import import_engine
from kdstudio.gui.gc_guard import collect_on_gui_thread
from kdstudio.gui.run.live_view import LiveView
from kdstudio.gui.run.worker import RunController
from kdstudio.gui.run_control import RunControl, run_layout
from kdstudio.gui.sweep_control import SweepControl
from kdstudio.gui.tasks import Task, shutdown_tasks
from kdstudio.gui.widgets.style import apply_window_style
from kdstudio.gui.widgets.theme import add_theme_menu, follow_theme
from kdstudio.gui.workbench import LOADING_START_TIP, Workbench

ORGANIZATION, APPLICATION = "kdstudio", "KD Studio"
CLOSE_WAIT_MS = 3000


def default_settings() -> QSettings:
    return QSettings(ORGANIZATION, APPLICATION)


class MainWindow(QMainWindow):
    """The workbench: setup form, Start/Pause/Stop, live charts; tabs for more views."""

    engine_ready = Signal()
    run_finished = Signal(object)  # dict(run_id, status, error, summary) or None; thread ended

    def __init__(self, db_path: str | Path | None = None, settings: QSettings | None = None,
                 defer_engine: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        collect_on_gui_thread()  # never a garbage collection in a run's worker thread
        self.setWindowTitle("KD Studio")
        self.setObjectName("mainWindow")
        self.db_path = Path(db_path).expanduser() if db_path else default_db_path()
        self.settings = settings if settings is not None else default_settings()
        follow_theme(self, apply_window_style)  # the style sheet in the theme's colours
        self.confirm_close: bool | None = None  # set to answer "stop the run?" without asking
        self.setup: Any = None  # SetupPanel, once the engine is imported
        self._store: Any = None
        self._store_error = ""
        self.is_closed = False  # closed, its Store too
        self.close_when_stopped = False  # asked to close while the run was stopping
        self._preloading = False
        self._problems: list[str] = []
        self.last_run_id: int | None = None

        self.controller = RunController(self)
        self.run_control = RunControl(self)
        self.config_files = ConfigFiles(self)
        self.sweeps = SweepControl(self)

        self.tabs = QTabWidget()
        self.tabs.setObjectName("mainTabs")
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.live = LiveView()
        self.tabs.addTab(self._build_workbench(), "Workbench")
        self._add_history_tabs()
        self._add_dark_knowledge_tab()
        self._build_menus()
        self.statusBar().showMessage(f"History: {self.db_path}")
        self._restore_window()
        self._update_buttons()
        if not defer_engine:
            self.load_engine()

    # ------------------------------------------------------------ layout

    def _build_workbench(self) -> QWidget:
        page = Workbench(self.live)
        self.start_button, self.pause_button = page.start_button, page.pause_button
        self.stop_button, self.status_label = page.stop_button, page.status_label
        self.problems_label, self.splitter = page.problems_label, page.splitter
        self.setup_stack, self.loading_label = page.setup_stack, page.loading_label
        self.skeleton = page.skeleton
        self.start_button.clicked.connect(self.start_run)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button.clicked.connect(self.stop_run)
        self.sweep_button = page.sweep_button
        self.sweep_button.clicked.connect(self.open_sweep_dialog)
        return page

    def add_tab(self, widget: QWidget, title: str) -> int:
        """Add a view as a tab of the main window; returns its index."""
        return self.tabs.addTab(widget, title)

    def _add_history_tabs(self) -> None:
        """History and Compare tabs; Re-run fills the form, Open and Compare show the runs'
        curves in the Compare tab."""
        from kdstudio.gui.compare.view import CompareView
        from kdstudio.gui.history.view import HistoryView

        self.history: Any = None
        self.compare: Any = None
        try:
            store = self.store  # one Store on the GUI thread, shared by both views
            if store is None:
                raise OSError(self._store_error)
            self.history = HistoryView(store, settings=self.settings)
            self.compare = CompareView(store)
        except Exception as error:  # noqa: BLE001 - a bad history file must not stop the window
            self.add_tab(QLabel(f"Cannot open the history {self.db_path}: {error}"), "History")
            return
        self.add_tab(self.history, "History")
        self.add_tab(self.compare, "Compare")
        self.history.rerun_requested.connect(self.rerun_config)
        self.history.resume_requested.connect(self.resume_run)
        self.history.open_run_requested.connect(self.open_run)
        self.history.compare_requested.connect(self.compare_runs)
        self.history.runs_deleted.connect(lambda _ids: self.compare.reload_run_list())

    def _add_dark_knowledge_tab(self) -> None:
        """The Dark knowledge tab: the last finished run, or the run the history asks for
        (it loads the models only when the tab is shown)."""
        from kdstudio.gui.insight.dark_knowledge import DarkKnowledgeView

        self.dark_knowledge = DarkKnowledgeView()
        self.add_tab(self.dark_knowledge, "Dark knowledge")
        if self.history is not None:
            self.history.dark_knowledge_requested.connect(self.show_dark_knowledge)
            self.history.runs_deleted.connect(self.dark_knowledge.forget_runs)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = QAction("&Open config…", self)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.setToolTip("Load a run config (TOML), as used by `kdstudio run`")
        self.open_action.triggered.connect(self.config_files.open_dialog)
        self.save_action = QAction("&Save config as…", self)
        self.save_action.setShortcut(QKeySequence.StandardKey.Save)
        self.save_action.setToolTip("Save the form as a TOML config for `kdstudio run`")
        self.save_action.triggered.connect(self.config_files.save_dialog)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        for action in (self.open_action, self.save_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        run_menu = self.menuBar().addMenu("&Run")
        run_menu.setToolTipsVisible(True)
        self.sweep_action = QAction("S&weep…", self)
        self.sweep_action.setShortcut(QKeySequence("Ctrl+Shift+R"))
        self.sweep_action.setToolTip("Run the form's config over several values of its keys "
                                     "and seeds, in the background (the Sweep tab)")
        self.sweep_action.triggered.connect(self.open_sweep_dialog)
        run_menu.addAction(self.sweep_action)
        self.presets_menu = self.menuBar().addMenu("&Presets")
        self.presets_menu.setToolTipsVisible(True)
        self.theme_menu = add_theme_menu(self.menuBar().addMenu("&View"), self.settings)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("About KD Studio", self._about)

    def _about(self) -> None:
        from kdstudio import __version__

        QMessageBox.about(self, "About KD Studio",
                          f"<b>KD Studio {__version__}</b><br>Distil a teacher network into a "
                          f"small student and watch it learn.<br><br>History: {self.db_path}")

    def warn(self, title: str, text: str) -> None:
        QMessageBox.warning(self, title, text)

    # ------------------------------------------------------------ saved runs in the views

    def show_dark_knowledge(self, run_id: int) -> None:
        """Show a saved run in the Dark knowledge tab."""
        self.dark_knowledge.set_run(self.db_path, run_id)
        self.tabs.setCurrentWidget(self.dark_knowledge)

    def open_run(self, run_id: int) -> bool:
        """Show a saved run in the workbench's live view, as it looked when it ended: its
        curves, phase bars and summary. A run still going (here or in another process) is
        shown in the Compare tab instead. Returns whether the live view shows it."""
        from kdstudio.core.config import config_from_dict
        from kdstudio.core.replay import replay_events

        store = self.store
        row = store.get_run(run_id) if store is not None else None
        if row is None:
            self.statusBar().showMessage(f"Run #{run_id} is not in the history", 8000)
            return False
        busy = self.controller.running or row["status"] == "running"
        if busy:
            self.compare_runs([run_id])
            self.statusBar().showMessage(
                "A run is in progress: the workbench shows it, so the run you opened is in "
                "the Compare tab" if self.controller.running else
                f"Run #{run_id} is still running elsewhere: its curves are in the Compare tab",
                8000)
            return False
        try:
            config, _problems = config_from_dict(row["config"])
            phases, parts, scheduled = run_layout(config)
        except (KeyError, TypeError, ValueError) as error:  # a config this version cannot read
            self.compare_runs([run_id])
            self.statusBar().showMessage(f"Run #{run_id} shown in Compare ({error})", 8000)
            return False
        self.live.replay(replay_events(store, run_id), phases, parts, scheduled)
        self.live.summary_card.show_run(row)
        if self.setup is not None:  # its config, sizes and status, read-only until Edit
            self.setup.show_run(row)
            self._show_viewing_status()
        self.tabs.setCurrentIndex(0)
        self.statusBar().showMessage(f"Run #{run_id} {row['name']} opened from the history",
                                     8000)
        return True

    def _show_viewing_status(self) -> None:
        """While the form shows a saved run, the status names that run and its status."""
        from kdstudio.gui.setup.viewing import viewing_text

        if self.setup is not None and self.setup.viewing_run is not None:
            self.status_label.setText(viewing_text(self.setup.viewing_run))
            self.status_label.setToolTip("Edit makes the form editable; Re-run starts it again")

    def _viewing_ended(self) -> None:
        self.status_label.setText("")
        self.status_label.setToolTip("")
        self.run_control.show_start_status()

    def compare_runs(self, run_ids: list[int]) -> None:
        """Show these saved runs (one or more) in the Compare tab."""
        if self.compare is not None:
            self.compare.set_runs(list(run_ids))
            self.tabs.setCurrentWidget(self.compare)

    def compare_sweep(self, run_ids: list[int]) -> None:
        """Show a sweep's runs in the Compare tab, the parallel-coordinates chart in front."""
        if self.compare is not None:
            self.compare.show_runs(list(run_ids))
            self.tabs.setCurrentWidget(self.compare)

    # ------------------------------------------------------------ runs (gui/run_control.py)

    def start_run(self) -> bool:
        """Validate the form and start the run in the worker thread; False if refused."""
        if self.setup is not None:
            self.setup.stop_viewing()  # a run opened from the History is run again
        return self.run_control.start()

    def toggle_pause(self) -> None:
        self.run_control.toggle_pause()

    def stop_run(self) -> None:
        self.run_control.stop()

    def resume_run(self, run_id: int) -> bool:
        """Go on with a stopped or interrupted run in the workbench; False if refused."""
        return self.run_control.resume(run_id)

    def open_sweep_dialog(self) -> Any:
        """The Sweep dialog on the form's config (gui/sweep); None if the form has problems."""
        return self.sweeps.open_dialog()

    # ------------------------------------------------------------ configs (gui/config_files.py)

    def open_config(self, path: str | Path) -> list[str]:
        """Load a TOML config into the form; returns (and shows) the problems found."""
        return self.config_files.open_config(path)

    def save_config(self, path: str | Path) -> Path | None:
        """Write the form as a TOML config that `kdstudio run` reads; None if it failed."""
        return self.config_files.save_config(path)

    def load_preset(self, name: str) -> list[str]:
        return self.config_files.load_preset(name)

    def rerun_config(self, config: dict[str, Any]) -> bool:
        """Load a saved run's config into the form and show the workbench."""
        return self.config_files.rerun_config(config)

    # ------------------------------------------------------------ engine loading

    def preload_engine(self) -> None:
        """Import torch and the registries in a background task, then build the form."""
        if self._preloading or self.setup is not None:
            return
        self._preloading = True
        task = Task(import_engine, name="kdstudio-import")
        task.progress.connect(self._imported)
        task.error.connect(self._import_failed)
        task.start()

    def _imported(self, _report: object) -> None:
        self.load_engine()

    def _import_failed(self, error: BaseException) -> None:
        if self.setup is None:  # the warm-up after the imports may fail: it only costs time
            self.skeleton.show_failure(f"Could not load the training engine:\n"
                                   f"{type(error).__name__}: {error}\n\n"
                                   "Check that PyTorch is installed (pip install torch).")
            self.status_label.setText("The engine could not be loaded")

    def load_engine(self) -> None:
        """Build the setup form (imports torch) and restore the last config."""
        if self.setup is not None or self.is_closed:
            return
        from kdstudio.gui.setup.panel import SetupPanel

        self.setup = SetupPanel(store_provider=lambda: self.store)
        self.setup.validated.connect(self.show_validation)
        self.setup.viewing_ended.connect(self._viewing_ended)
        self.setup.rerun_requested.connect(self.start_run)
        self.setup_stack.addWidget(self.setup)
        self.setup_stack.setCurrentWidget(self.setup)
        self.skeleton.stop()
        self.setup_stack.removeWidget(self.skeleton)
        self.skeleton.setParent(None)  # out of the window's children now, deleted later
        self.skeleton.deleteLater()
        self.config_files.fill_presets_menu()
        self.config_files.restore_last_config()
        self.status_label.setText("Ready")
        self._update_buttons()
        self.run_control.show_start_status()
        collect_on_gui_thread().freeze_loaded()  # torch's objects out of every collection
        self.engine_ready.emit()

    @property
    def store(self) -> Any:
        """The GUI thread's own Store (the worker opens another); None if it cannot open."""
        if self._store is None:
            from kdstudio.core.store import Store

            try:
                self._store = Store(self.db_path)
            except Exception as error:  # noqa: BLE001 - reported, the window keeps working
                self._store_error = str(error)
                self.statusBar().showMessage(f"Cannot open the history {self.db_path}: {error}")
                return None
        return self._store

    # ------------------------------------------------------------ validation and buttons

    def show_validation(self, problems: list[str]) -> None:
        """Show the form's problems above it; Start stays disabled while there are any."""
        self._problems = list(problems)
        # a check still reading the data files is shown by the form's preview, not here
        problems = [p for p in problems if self.setup is None or not self.setup.waiting(p)]
        if problems:
            shown = problems[:8] + ([f"… and {len(problems) - 8} more"] if len(problems) > 8
                                    else [])
            self.problems_label.setText("<b>Cannot start yet:</b><br>" + "<br>".join(
                "• " + html.escape(self.setup.readable(p) if self.setup else p, quote=False)
                for p in shown))
        self.problems_label.setVisible(bool(problems) and not self.controller.running)
        self.run_control.update_buttons_safely(for_run=False)
        self._show_viewing_status()

    def _update_buttons(self) -> None:
        running = self.controller.running
        ready = self.setup is not None and not self._problems
        self.start_button.setEnabled(ready and not running)
        if self.setup is None:
            self.start_button.setToolTip(LOADING_START_TIP)
        elif self._problems:
            self.start_button.setToolTip("Fix first:\n" + "\n".join(self._problems))
        else:
            self.start_button.setToolTip("Start the run (Ctrl+R)")
        self.pause_button.setEnabled(running)
        self.pause_button.setText("Resume" if self.controller.paused else "Pause")
        self.stop_button.setEnabled(running and not self.controller.flags.stop.is_set())
        if self.setup is not None:
            self.setup.setEnabled(not running)
        for action in (self.open_action, self.save_action):
            action.setEnabled(self.setup is not None and not running)
        self.presets_menu.setEnabled(self.setup is not None and not running)
        sweep_ready = ready and not self.sweeps.queue.running
        self.sweep_button.setEnabled(sweep_ready)
        self.sweep_action.setEnabled(sweep_ready)

    # ------------------------------------------------------------ settings and closing

    def _splitters(self) -> tuple[tuple[str, QSplitter], ...]:
        return (("window/workbench_splitter", self.splitter),
                ("window/live_splitter", self.live.splitter),
                ("window/bottom_splitter", self.live.bottom_splitter))

    def _restore_window(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1440, 900)
        for key, splitter in self._splitters():
            state = self.settings.value(key)
            if isinstance(state, QByteArray) and not state.isEmpty():
                splitter.restoreState(state)
        smoothing = self.settings.value("live/smoothing")
        if smoothing is not None:
            with contextlib.suppress(TypeError, ValueError):
                self.live.smoothing.setValue(int(smoothing))

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        for key, splitter in self._splitters():
            self.settings.setValue(key, splitter.saveState())
        self.settings.setValue("live/smoothing", self.live.smoothing.value())
        self.config_files.save_last_config()
        self.settings.sync()

    def _confirm_stop(self) -> bool:
        if self.confirm_close is not None:
            return self.confirm_close
        answer = QMessageBox.question(
            self, "Stop the run?",
            "A run is in progress. Stop it and close the window?\n\n"
            "Everything trained so far stays in the history (status: stopped).",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        if self.controller.thread_alive():
            if not self.close_when_stopped and not self._confirm_stop():
                event.ignore()
                return
            self.live.log("Stopping the run: the window is closing", "warning")
            if not self.controller.stop_and_wait(CLOSE_WAIT_MS):
                self.close_when_stopped = True  # still preparing data: close when it ends
                self.status_label.setText("Stopping; the window closes when the run has "
                                          "stopped…")
                event.ignore()
                return
        if not self.sweeps.close_sweep():
            event.ignore()
            return
        self.save_settings()
        self.is_closed = True
        if self.history is not None:
            self.history.timer.stop()  # it polls the Store closed below
        if self._store is not None:
            self._store.close()
            self._store = None
        event.accept()

    def stop_for_quit(self) -> None:
        """Called when the application quits: never leave the worker thread running."""
        self.controller.stop_and_wait(60_000)
        shutdown_tasks()
