"""The window's side of sweeps: Run ▸ Sweep… opens the dialog on the form's config (a form
with problems cannot start one), Start runs it in the Sweep tab's queue, finished trials
refresh the History tab and Compare opens the Compare tab on the sweep's runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QMessageBox

from kdstudio.gui.sweep.queue import SweepQueue

STOP_WAIT_MS = 30_000

if TYPE_CHECKING:
    from kdstudio.gui.main_window import MainWindow
    from kdstudio.gui.sweep.dialog import SweepDialog


class SweepControl(QObject):
    """Opens the Sweep dialog and shows the sweep it starts; owned by the `MainWindow`."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.dialog: SweepDialog | None = None
        self.queue = SweepQueue()
        self.queue.trial_finished.connect(self._trial_finished)
        self.queue.sweep_finished.connect(self._sweep_finished)
        self.queue.compare_requested.connect(window.compare_sweep)

    def open_dialog(self) -> SweepDialog | None:
        """The Sweep dialog on the form's config; None (the problems shown above the form)
        while the form cannot run or its model code is not trusted."""
        from kdstudio.gui.sweep.dialog import SweepDialog

        window = self.window
        if window.setup is None:
            return None
        config, problems = window.setup.run_config()
        window.show_validation(problems)
        if problems:
            window.statusBar().showMessage("Fix the form's problems before a sweep", 8000)
            return None
        if not window.run_control._code_trusted(config):
            return None
        if self.dialog is not None:
            self.dialog.close()
            self.dialog.deleteLater()
        self.dialog = SweepDialog(config.to_dict(), window.db_path.parent / "sweeps", window)
        self.dialog.start_requested.connect(self.start)
        self.dialog.show()
        return self.dialog

    def start(self, spec: Any, workers: int, backend: str) -> bool:
        """Run the sweep in the queue (the Sweep tab, shown); False if one is running."""
        window = self.window
        if self.queue.running:
            window.warn("Sweep", "A sweep is running: cancel it or wait for it to end first.")
            return False
        if window.tabs.indexOf(self.queue) < 0:
            window.add_tab(self.queue, "Sweep")
        window.tabs.setCurrentWidget(self.queue)
        self.queue.start(spec, window.db_path, workers, backend)
        window.statusBar().showMessage("Sweep started: its trials are in the Sweep tab", 8000)
        window._update_buttons()
        return True

    def close_sweep(self) -> bool:
        """Before the window closes: stop a running sweep (asked first, unless the window's
        `confirm_close` answers) and wait for it; False to keep the window open."""
        if not self.queue.running:
            return True
        answer = self.window.confirm_close
        if answer is None:
            answer = QMessageBox.question(
                self.window, "Stop the sweep?",
                "A sweep is running. Stop its trials and close the window?\n\n"
                "Finished trials stay in the history; the running ones end stopped.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No) == QMessageBox.StandardButton.Yes
        if not answer:
            return False
        self.window.statusBar().showMessage("Stopping the sweep's trials…")
        self.queue.stop_and_wait(STOP_WAIT_MS)
        return True

    def _trial_finished(self, _event: Any) -> None:
        if self.window.history is not None and not self.window.is_closed:
            self.window.history.reload()

    def _sweep_finished(self, result: Any) -> None:
        window = self.window
        if window.is_closed:  # its Store is closed: the events queued before are late
            return
        if window.history is not None:
            window.history.reload()
        if window.compare is not None:
            window.compare.reload_run_list()
        if window.setup is not None:
            window.setup.history_changed()
        window.statusBar().showMessage("The sweep has ended" if result is not None
                                       else "The sweep failed: see the Sweep tab", 10000)
        window._update_buttons()
