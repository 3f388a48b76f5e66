"""The KD Studio main window and `main()`, which `kdstudio` / `kdstudio gui` call.

The window is built around a QTabWidget (`mainTabs`); the first tab, "Workbench", holds the
setup form, the run controls and the live view. Other views are added with `add_tab`.

Torch takes seconds to import, so `main()` shows the window first and imports the engine
in a background thread; the setup form (which needs the registries) appears when it is
ready. `MainWindow(db_path=...)` without `defer_engine` builds everything at once (tests).

Bench hook: with `KDSTUDIO_STARTUP_PROBE=<file>` set, `main()` appends `shown <epoch s>`
at the window's first paint and `ready <epoch s>` when the form is built, then quits.
With `KDSTUDIO_START_CONFIG=<config.toml>` also set it loads that config, presses Start and
appends `training <run id>` at the first step instead (see gui/lifecycle.py).
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from kdstudio.core.events import (
    Epoch,
    Event,
    PhaseFinished,
    PhaseStarted,
    ResumePoint,
    RunStarted,
    Step,
)
from kdstudio.core.paths import default_db_path
from kdstudio.core.plan import PHASES
from kdstudio.gui.gc_guard import collect_on_gui_thread
from kdstudio.gui.run.live_view import LiveView
from kdstudio.gui.run.worker import RunController
from kdstudio.gui.tasks import Task, TaskState, shutdown_tasks
from kdstudio.gui.widgets.file_dialogs import open_file_name, save_file_name
from kdstudio.gui.widgets.style import STYLE

ORGANIZATION, APPLICATION = "kdstudio", "KD Studio"
DEFAULT_PRESET = "digits-kd"
CLOSE_WAIT_MS = 3000
ENGINE_MODULES = ("torch", "kdstudio.core.models", "kdstudio.core.data",
                  "kdstudio.core.distill.methods", "kdstudio.core.engine")


def default_settings() -> QSettings:
    return QSettings(ORGANIZATION, APPLICATION)


def run_name(config: Any) -> str:
    """A readable default name: dataset, teacher -> student, method."""
    if config.distill.method == "none":
        return f"{config.data.dataset} {config.student.arch} alone"
    return (f"{config.data.dataset} {config.teacher.arch}->{config.student.arch} "
            f"{config.distill.method}")


def run_layout(config: Any) -> tuple[list[str], list[str], list[str]]:
    """The phases a config will run, the loss parts of its distillation and the values its
    schedules move (as the engine plans them), so the live view can set up its curves
    before the first event."""
    from kdstudio.core.distill.methods import METHODS
    from kdstudio.core.distill.schedules import parse_schedules
    from kdstudio.core.plan import phase_names

    method = METHODS.get(config.distill.method)
    moving = [key for key, schedule in parse_schedules(config.distill.schedules).items()
              if schedule.kind != "constant"]
    return phase_names(config), list(method.parts), moving


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
        self.setStyleSheet(STYLE)
        self.db_path = Path(db_path).expanduser() if db_path else default_db_path()
        self.settings = settings if settings is not None else default_settings()
        self.confirm_close: bool | None = None  # set to answer "stop the run?" without asking
        self.setup: Any = None  # SetupPanel, once the engine is imported
        self._store: Any = None
        self._store_error = ""
        self._closed = False
        self._close_when_stopped = False
        self._preloading = False
        self._problems: list[str] = []
        self._window_error = ""  # the first error of the window's own code in this run
        self._stopped_for_error = False  # the window stopped the run because of it
        self.last_run_id: int | None = None

        self.controller = RunController(self)
        self.controller.event.connect(self._on_event)
        self.controller.event.connect(self._continue_curves)
        self.controller.problems.connect(self._on_refused)
        self.controller.finished.connect(self._on_run_done)

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
        page = QWidget()
        page.setObjectName("workbenchTab")
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("startButton")
        self.start_button.setShortcut(QKeySequence("Ctrl+R"))
        self.start_button.clicked.connect(self.start_run)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setObjectName("pauseButton")
        self.pause_button.setToolTip("Pause the run after the current batch; press again to "
                                     "resume")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stopButton")
        self.stop_button.setToolTip("Stop the run after the current batch (within a second); "
                                    "everything so far stays in the history")
        self.stop_button.clicked.connect(self.stop_run)
        self.status_label = QLabel("Loading the engine (PyTorch)…")
        self.status_label.setObjectName("runStatusLabel")
        self.problems_label = QLabel()
        self.problems_label.setObjectName("problemsLabel")
        self.problems_label.setWordWrap(True)
        self.problems_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems_label.hide()

        bar = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.stop_button):
            bar.addWidget(button)
        bar.addSpacing(12)
        bar.addWidget(self.status_label, 1)

        self.setup_stack = QStackedWidget()
        self.setup_stack.setObjectName("setupStack")
        self.loading_label = QLabel("Loading the engine (PyTorch)…")
        self.loading_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.loading_label.setWordWrap(True)
        self.setup_stack.addWidget(self.loading_label)
        self.setup_stack.setMinimumWidth(380)

        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(bar)
        column.addWidget(self.problems_label)
        column.addWidget(self.setup_stack, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("workbenchSplitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.live)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([430, 1000])
        layout = QVBoxLayout(page)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.splitter)
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
            self.history = HistoryView(store)
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

    def rerun_config(self, config: dict[str, Any]) -> bool:
        """Load a saved run's config into the form and show the workbench."""
        if self.setup is None:
            self.statusBar().showMessage("The engine is still loading; Re-run again in a "
                                         "moment", 8000)
            return False
        if self.controller.running:
            self.statusBar().showMessage("A run is in progress: stop it before loading "
                                         "another config", 8000)
            return False
        self.tabs.setCurrentIndex(0)
        self.load_config_dict(config, "Re-run", f"the config of {config.get('name') or 'the run'}")
        if not self.setup.load_problems:
            self.statusBar().showMessage(f"Config of {config.get('name') or 'the run'} loaded; "
                                         "press Start to run it again", 8000)
        return True

    def load_config_dict(self, data: dict[str, Any], title: str, origin: str,
                         dialog: bool = True) -> list[str]:
        """The one loading path of the form (Open, Re-run, the last config on start): fill
        it and report every value it could not take as given, by key path (in a dialog
        unless `dialog` is False, and in the status bar; the fields are marked)."""
        problems = self.setup.set_config(data)
        if problems:
            if dialog:
                self._warn(title, f"{origin} was loaded, except for these values (marked in "
                           "the form):\n\n" + "\n".join(problems))
            self.statusBar().showMessage(f"{origin} loaded; {len(problems)} value(s) could not "
                                         f"be kept: {problems[0]}", 15000)
        return problems

    def resume_run(self, run_id: int) -> bool:
        """Go on with a stopped or interrupted run in the workbench, through the same worker
        and engine as Start; its curves so far are shown first. False if refused here (the
        engine's own refusals come back as the run's problems)."""
        from kdstudio.core.config import config_from_dict
        from kdstudio.core.resume import refusal

        store = self.store
        if self.setup is None or self.controller.running or store is None:
            self.statusBar().showMessage(
                "A run is in progress: stop it before resuming another" if
                self.controller.running else "The engine is still loading; Resume again in a "
                "moment", 8000)
            return False
        row = store.get_run(run_id)
        reason = refusal(row, store.artifact_dir(run_id), run_id)
        if reason or row is None:
            self.statusBar().showMessage(f"Cannot resume: {reason}", 10000)
            return False
        config, _problems = config_from_dict(row["config"])
        self.live.begin_run(*run_layout(config))
        self.live.log(f"Resuming run #{run_id} {row['name']}")
        self.live.repaint()
        self.controller.start(config, self.db_path, resume_id=run_id)
        self.status_label.setText(f"Running {row['name']} (resumed)")
        self.problems_label.hide()
        self.tabs.setCurrentIndex(0)
        self._update_buttons()
        return True

    def _continue_curves(self, event: Event) -> None:
        """When a resumed run has started (and dropped its unfinished epoch), show what it
        had done before, then its new steps follow."""
        if not isinstance(event, RunStarted) or event.resumed is None:
            return
        from kdstudio.core.replay import replay_events

        store = self.store
        if store is None:
            return
        resumed = event.resumed
        for _when, replayed in replay_events(store, event.run_id):
            if _before_resume(replayed, resumed):
                self.live.push(replayed)

    def _add_dark_knowledge_tab(self) -> None:
        """The Dark knowledge tab: the last finished run, or the run the history asks for
        (it loads the models only when the tab is shown)."""
        from kdstudio.gui.insight.dark_knowledge import DarkKnowledgeView

        self.dark_knowledge = DarkKnowledgeView()
        self.add_tab(self.dark_knowledge, "Dark knowledge")
        if self.history is not None:
            self.history.dark_knowledge_requested.connect(self.show_dark_knowledge)
            self.history.runs_deleted.connect(self.dark_knowledge.forget_runs)

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
        self.tabs.setCurrentIndex(0)
        self.statusBar().showMessage(f"Run #{run_id} {row['name']} opened from the history",
                                     8000)
        return True

    def compare_runs(self, run_ids: list[int]) -> None:
        """Show these saved runs (one or more) in the Compare tab."""
        if self.compare is not None:
            self.compare.set_runs(list(run_ids))
            self.tabs.setCurrentWidget(self.compare)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.open_action = QAction("&Open config…", self)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.setToolTip("Load a run config (TOML), as used by `kdstudio run`")
        self.open_action.triggered.connect(self._open_dialog)
        self.save_action = QAction("&Save config as…", self)
        self.save_action.setShortcut(QKeySequence.StandardKey.Save)
        self.save_action.setToolTip("Save the form as a TOML config for `kdstudio run`")
        self.save_action.triggered.connect(self._save_dialog)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        for action in (self.open_action, self.save_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        self.presets_menu = self.menuBar().addMenu("&Presets")
        self.presets_menu.setToolTipsVisible(True)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("About KD Studio", self._about)

    def _about(self) -> None:
        from kdstudio import __version__

        QMessageBox.about(self, "About KD Studio",
                          f"<b>KD Studio {__version__}</b><br>Distil a teacher network into a "
                          f"small student and watch it learn.<br><br>History: {self.db_path}")

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
        self._after_import("")

    def _import_failed(self, error: BaseException) -> None:
        if self.setup is None:  # the warm-up after the imports may fail: it only costs time
            self._after_import(f"{type(error).__name__}: {error}")

    def _after_import(self, error: str) -> None:
        if error:
            self.loading_label.setText(f"Could not load the training engine:\n{error}\n\n"
                                       "Check that PyTorch is installed "
                                       "(pip install torch).")
            self.status_label.setText("The engine could not be loaded")
            return
        self.load_engine()

    def load_engine(self) -> None:
        """Build the setup form (imports torch) and restore the last config."""
        if self.setup is not None or self._closed:
            return
        from kdstudio.gui.setup.panel import SetupPanel

        self.setup = SetupPanel(store_provider=lambda: self.store)
        self.setup.validated.connect(self._on_validated)
        self.setup_stack.addWidget(self.setup)
        self.setup_stack.setCurrentWidget(self.setup)
        self._fill_presets_menu()
        self._restore_config()
        self.status_label.setText("Ready")
        self._update_buttons()
        self.engine_ready.emit()

    def _fill_presets_menu(self) -> None:
        from kdstudio.core.presets import list_presets, preset_description

        self.presets_menu.clear()
        for name in list_presets():
            action = self.presets_menu.addAction(name)
            action.setToolTip(preset_description(name))
            action.setObjectName(f"preset_{name}")
            action.triggered.connect(lambda _checked=False, n=name: self.load_preset(n))
        if not self.presets_menu.actions():
            self.presets_menu.addAction("no presets found").setEnabled(False)

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

    # ------------------------------------------------------------ config files and presets

    def load_preset(self, name: str) -> list[str]:
        from kdstudio.core.presets import load_preset

        try:
            data = load_preset(name)
        except ValueError as error:
            self._warn("Preset", str(error))
            return [str(error)]
        problems = self.setup.set_config(data)
        self.statusBar().showMessage(f"Preset {name} loaded", 5000)
        return problems

    def _open_dialog(self) -> None:
        path = open_file_name(self, "Open config", str(Path.home()),
                              "Config (*.toml);;All files (*)")
        if path:
            self.open_config(path)

    def open_config(self, path: str | Path) -> list[str]:
        """Load a TOML config into the form; returns (and shows) the problems found."""
        from kdstudio.core.config import read_toml

        try:
            data = read_toml(path)
        except ValueError as error:
            self._warn("Open config", str(error))
            return [str(error)]
        problems = self.load_config_dict(data, "Open config", str(path))
        if not problems:
            self.statusBar().showMessage(f"Config loaded from {path}", 5000)
        return problems

    def _save_dialog(self) -> None:
        path = save_file_name(self, "Save config as", str(Path.home() / "kdstudio-run.toml"),
                              "Config (*.toml)")
        if path:
            self.save_config(path)

    def save_config(self, path: str | Path) -> Path | None:
        """Write the form as a TOML config that `kdstudio run` reads; None if it failed."""
        from kdstudio.core.config import config_from_dict, save_toml

        data, problems = self.setup.config_dict()
        config, more = config_from_dict(data)
        target = Path(path)
        if not target.suffix:
            target = target.with_suffix(".toml")
        try:
            save_toml(config, target)
        except OSError as error:
            self._warn("Save config", f"Cannot write {target}: {error.strerror or error}")
            return None
        if problems + more:
            self._warn("Save config", f"Saved {target}, but these fields could not be read "
                       "and were saved with their defaults:\n\n" + "\n".join(problems + more))
        self.statusBar().showMessage(f"Config saved to {target}", 5000)
        return target

    def _warn(self, title: str, text: str) -> None:
        QMessageBox.warning(self, title, text)

    # ------------------------------------------------------------ errors of the window itself

    def _window_failed(self, error: Exception) -> None:
        """Note the first error of the window's own code in a run and stop the run: the
        run is then marked failed with it once the worker has finished."""
        if not self._window_error:
            self._window_error = f"window error: {type(error).__name__}: {error}"
            with contextlib.suppress(Exception):
                self.live.log(self._window_error, "error")
        if self.controller.running and not self.controller.flags.stop.is_set():
            self.controller.stop()
            self._stopped_for_error = True

    def _show_window_error(self) -> None:
        """Show the noted window error, once; the next run starts with none."""
        message, self._window_error = self._window_error, ""
        stopped, self._stopped_for_error = self._stopped_for_error, False
        if not message:
            return
        with contextlib.suppress(Exception):
            self.status_label.setText(message)
        if not self._closed and not self._close_when_stopped:
            self._warn("Run", message + ("\n\nThe window stopped the run; what it had "
                                         "trained so far is in the history." if stopped
                                         else ""))

    def _update_buttons_safely(self) -> None:
        """`_update_buttons`, or at least Start and Stop right if it fails."""
        try:
            self._update_buttons()
        except Exception as error:  # noqa: BLE001 - the window must stay usable
            self._window_failed(error)
            running = self.controller.running
            self.start_button.setEnabled(self.setup is not None and not running)
            self.stop_button.setEnabled(running and not self.controller.flags.stop.is_set())

    # ------------------------------------------------------------ validation and buttons

    def _on_validated(self, problems: list[str]) -> None:
        self._problems = list(problems)
        if problems:
            shown = problems[:8] + ([f"… and {len(problems) - 8} more"] if len(problems) > 8
                                    else [])
            self.problems_label.setText("<b>Cannot start yet:</b><br>" + "<br>".join(
                "• " + html.escape(p, quote=False) for p in shown))
        self.problems_label.setVisible(bool(problems) and not self.controller.running)
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.controller.running
        ready = self.setup is not None and not self._problems
        self.start_button.setEnabled(ready and not running)
        if self.setup is None:
            self.start_button.setToolTip("The engine is still loading")
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

    # ------------------------------------------------------------ run control

    def start_run(self) -> bool:
        """Validate the form and start the run in the worker thread; False if refused.

        An error of the window while starting stops the run, if it began (it ends failed
        with that error), and is shown once."""
        if self.setup is None or self.controller.running:
            return False
        self._window_error, self._stopped_for_error = "", False
        try:
            return self._start_run()
        except Exception as error:  # noqa: BLE001 - never a window stuck in "running"
            self._window_failed(error)
            if not self.controller.running:  # else shown when the stopped run has ended
                self._show_window_error()
            self._update_buttons_safely()
            return False

    def _start_run(self) -> bool:
        config, problems = self.setup.run_config()
        self._on_validated(problems)
        if problems:
            return False
        if not config.name:
            config.name = run_name(config)
        self.live.begin_run(*run_layout(config))
        self.live.log(f"Starting {config.name}")
        # paint the cleared charts before the worker competes for the interpreter lock:
        # the first full repaint of the run view is the GUI thread's heaviest moment
        self.live.repaint()
        self.controller.start(config, self.db_path)
        self.status_label.setText(f"Running {config.name}")
        self.problems_label.hide()
        self._update_buttons()
        return True

    def toggle_pause(self) -> None:
        if not self.controller.running:
            return
        if self.controller.paused:
            self.controller.resume()
            self.status_label.setText("Running")
            self.live.log("Resumed")
        else:
            self.controller.pause()
            self.status_label.setText("Paused: press Resume to continue")
            self.live.log("Paused after the current batch")
        self._update_buttons()

    def stop_run(self) -> None:
        if self.controller.running:
            self.controller.stop()
            self.status_label.setText("Stopping after the current batch…")
            self._update_buttons()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.last_run_id = event.run_id
        if self._window_error:
            return  # the run is stopping because of it
        try:
            self.live.push(event)
        except Exception as error:  # noqa: BLE001 - stop the run, mark it failed, show once
            self._window_failed(error)
            self._update_buttons_safely()

    def _on_refused(self, problems: list[str]) -> None:
        try:
            self._show_refused(problems)
        except Exception as error:  # noqa: BLE001 - shown once when the run has ended
            self._window_failed(error)

    def _show_refused(self, problems: list[str]) -> None:
        for problem in problems:
            self.live.log(problem, "error")
        self.problems_label.setText("<b>The run could not start:</b><br>" + "<br>".join(
            "• " + html.escape(p, quote=False) for p in problems))
        self.problems_label.show()

    def _on_run_done(self, result: dict[str, Any] | None) -> None:
        """Show how the run ended; whatever fails here, Start is enabled again after."""
        try:
            if self._window_error and result is not None and result["status"] == "stopped":
                result = self._mark_failed(result, self._window_error)
            self._show_run_end(result)
        except Exception as error:  # noqa: BLE001 - the window must stay usable
            self._window_failed(error)
        self._update_buttons_safely()
        if self._window_error and result is not None and result["status"] != "failed":
            # the window failed at the run's end: the run is marked failed with the reason
            # (its results stay stored), as for an error while it ran
            with contextlib.suppress(Exception):
                result = self._mark_failed(result, self._window_error)
        self.run_finished.emit(result)
        self._show_window_error()
        if self._close_when_stopped:
            self.close()

    def _mark_failed(self, result: dict[str, Any], reason: str) -> dict[str, Any]:
        """Record a run as failed because of the window's own error (its stored results
        stay)."""
        store = self.store
        if store is not None:
            store.finish_run(result["run_id"], "failed", reason)
        return {**result, "status": "failed", "error": reason}

    def _show_run_end(self, result: dict[str, Any] | None) -> None:
        self.live.end_run()
        if result is not None and not self._closed:
            store = self.store
            row = store.get_run(result["run_id"]) if store is not None else None
            self.live.summary_card.show_run(row or result)
            status = result["status"]
            self.status_label.setText(f"Run #{result['run_id']} {status}"
                                      + (f": {result['error']}" if result.get("error") else ""))
            self.statusBar().showMessage(f"Run #{result['run_id']} {status}; saved in "
                                         f"{self.db_path}", 10000)
            self.dark_knowledge.set_run(self.db_path, result["run_id"])  # loads when shown
        elif result is None:
            self.status_label.setText("The run did not start")
            self.live.progress_bar.setFormat("did not start")
            self.live.summary_card.title.setText("The run did not start: see the problems "
                                                 "above the form")
        if self.setup is not None and not self._closed and result is not None:
            self.setup.history_changed()  # (a refused run keeps its problems shown)
            self.setup.schedule_validation()

    # ------------------------------------------------------------ settings and closing

    def _restore_window(self) -> None:
        geometry = self.settings.value("window/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(1440, 900)
        for key, splitter in (("window/workbench_splitter", self.splitter),
                              ("window/live_splitter", self.live.splitter),
                              ("window/bottom_splitter", self.live.bottom_splitter)):
            state = self.settings.value(key)
            if isinstance(state, QByteArray) and not state.isEmpty():
                splitter.restoreState(state)
        smoothing = self.settings.value("live/smoothing")
        if smoothing is not None:
            with contextlib.suppress(TypeError, ValueError):
                self.live.smoothing.setValue(int(smoothing))

    def _restore_config(self) -> None:
        saved = self.settings.value("setup/last_config")
        if isinstance(saved, str) and saved:
            try:
                data = json.loads(saved)
            except ValueError:
                data = None
            if isinstance(data, dict):
                self.load_config_dict(data, "Last config", "The last config", dialog=False)
                return
        from kdstudio.core.presets import list_presets

        if DEFAULT_PRESET in list_presets():
            self.load_preset(DEFAULT_PRESET)
        else:
            self.setup.validate_now()

    def save_settings(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/workbench_splitter", self.splitter.saveState())
        self.settings.setValue("window/live_splitter", self.live.splitter.saveState())
        self.settings.setValue("window/bottom_splitter", self.live.bottom_splitter.saveState())
        self.settings.setValue("live/smoothing", self.live.smoothing.value())
        if self.setup is not None:
            data, _problems = self.setup.config_dict()
            self.settings.setValue("setup/last_config", json.dumps(data))
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
            if not self._close_when_stopped and not self._confirm_stop():
                event.ignore()
                return
            self.live.log("Stopping the run: the window is closing", "warning")
            if not self.controller.stop_and_wait(CLOSE_WAIT_MS):
                self._close_when_stopped = True  # still preparing data: close when it ends
                self.status_label.setText("Stopping; the window closes when the run has "
                                          "stopped…")
                event.ignore()
                return
        self.save_settings()
        self._closed = True
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


def _before_resume(event: Event, resumed: ResumePoint) -> bool:
    """Whether a replayed event of a resumed run is from before the point it went on from
    (the run may have written more rows by the time its start reaches the window)."""
    if isinstance(event, Step):
        return event.run_step <= resumed.run_step
    if not isinstance(event, (Epoch, PhaseStarted, PhaseFinished)) or event.phase not in PHASES:
        return False
    here, there = PHASES.index(event.phase), PHASES.index(resumed.phase)
    if here != there:
        return here < there
    return event.epoch <= resumed.epoch if isinstance(event, Epoch) else (
        isinstance(event, PhaseStarted))


def import_engine(state: TaskState) -> None:
    """Import the engine's modules, report that they are in, then warm up (a task function;
    a cancel, at quit, skips what is left)."""
    import importlib

    for name in ENGINE_MODULES:
        if state.cancelled:
            return
        importlib.import_module(name)
    state.report("imported")
    if not state.cancelled:
        warm_up_engine()


def warm_up_engine() -> None:
    """Pay one-off costs in the background while the user edits the form, not after Start:
    the first torch optimizer of a process imports more of torch (about 2 s here), and the
    first convolutions set up their CPU kernels. Both hold the GIL and would make a first
    run stutter."""
    import torch

    weight = torch.zeros(1, requires_grad=True)
    for optimizer in (torch.optim.Adam([weight]), torch.optim.SGD([weight], lr=0.1)):
        weight.sum().backward()
        optimizer.step()  # the first step and zero_grad import torch._dynamo (and sympy)
        optimizer.zero_grad()
    for conv, shape in ((torch.nn.Conv1d, (2, 1, 8)), (torch.nn.Conv2d, (2, 1, 8, 8))):
        conv(1, 2, 3, padding=1)(torch.zeros(shape)).sum().backward()


class _FirstPaint(QObject):
    """Calls `callback` once, at the first paint of the watched widget."""

    def __init__(self, callback: Any) -> None:
        super().__init__()
        self.callback = callback

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Paint and self.callback is not None:
            callback, self.callback = self.callback, None
            QTimer.singleShot(0, callback)
        return False


def _probe(path: str, what: str) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{what} {time.time():.6f} torch={int('torch' in sys.modules)}\n")


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
            _probe(probe, "shown")
        window.preload_engine()

    painted = _FirstPaint(first_paint)
    window.tabs.installEventFilter(painted)
    QTimer.singleShot(2000, window.preload_engine)  # in case no paint comes (minimised)
    if start_config:
        start_config_when_ready(window, start_config, probe)
    elif probe:
        window.engine_ready.connect(lambda: (_probe(probe, "ready"),
                                             QTimer.singleShot(0, window.close)))
    app.aboutToQuit.connect(window.stop_for_quit)
    window.show()
    return quit_on_signals.exit_code(app.exec())
