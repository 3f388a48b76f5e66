"""The export dialog: pick formats and a folder, export a run's student, show the checks.

The export (a few seconds: ONNX tracing, the checks, CPU latency timing) runs in a QObject
worker on its own QThread with its own Store, so the window stays responsive and a run in
progress can still be stopped; the dialog shows each step as it happens.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QCloseEvent, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from kdstudio.core.store import Store
from kdstudio.gui.run.worker import worker_thread
from kdstudio.gui.widgets.file_dialogs import existing_folder

FORMAT_TIPS = {
    "safetensors": "student.safetensors + student.json: weights and everything needed to "
                   "rebuild the student with create_model",
    "torchscript": "student.pt: TorchScript, loads with torch.jit.load, no KD Studio needed",
    "onnx": "student.onnx: one ONNX file with a dynamic batch dimension (onnxruntime, ...)",
}


def default_export_dir(run: dict) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", run.get("name") or "run").strip("-") or "run"
    return Path.home() / "kdstudio-exports" / f"{slug}-{run['id']}"


class ExportWorker(QObject):
    """Runs `export_student` in the worker thread; reports progress and the result."""

    progress = Signal(str)
    done = Signal(object, str)  # the ExportReport (or None) and an error message (or "")

    def __init__(self, db_path: Path, run_id: int, folder: str, formats: list[str]) -> None:
        super().__init__()  # no parent: it is moved to the worker thread
        self.db_path, self.run_id, self.folder, self.formats = db_path, run_id, folder, formats

    @Slot()
    def run(self) -> None:
        from kdstudio.core.export import ExportError, export_student

        report, error_text = None, ""
        try:
            with Store(self.db_path) as store:
                report = export_student(store, self.run_id, self.folder, self.formats,
                                        on_progress=self.progress.emit)
        except ExportError as error:
            error_text = str(error)
        except Exception as error:  # noqa: BLE001 - a message for the user, never a traceback
            error_text = f"{type(error).__name__}: {error}"
        self.done.emit(report, error_text)


class ExportDialog(QDialog):
    """Export one run's student; the report (files, max differences, latency) is shown."""

    exported = Signal(bool)  # the export ended: True when every file matched the student

    def __init__(self, db_path: str | Path, run: dict, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.db_path = Path(db_path)
        self.run = run
        self.report = None
        self._thread: QThread | None = None
        self._worker: ExportWorker | None = None
        self.setWindowTitle(f"Export the student of run {run['id']} ({run['name']})")
        self.resize(620, 420)

        self.format_boxes: dict[str, QCheckBox] = {}
        formats = QHBoxLayout()
        for name in FORMAT_TIPS:
            box = QCheckBox(name)
            box.setObjectName(f"exportFormat_{name}")
            box.setChecked(True)
            box.setToolTip(FORMAT_TIPS[name])
            box.toggled.connect(self._update_enabled)
            self.format_boxes[name] = box
            formats.addWidget(box)
        formats.addStretch(1)

        self.folder = QLineEdit(str(default_export_dir(run)))
        self.folder.setObjectName("exportFolder")
        self.folder.setToolTip("Folder for student.*, student.json and MODEL_CARD.md; "
                               "created if needed, files of an earlier export are replaced")
        self.folder.textChanged.connect(self._update_enabled)
        browse = QPushButton("Browse…")
        browse.setObjectName("exportBrowse")
        browse.clicked.connect(self._browse)
        where = QHBoxLayout()
        where.addWidget(self.folder, 1)
        where.addWidget(browse)

        form = QFormLayout()
        form.addRow("Formats", formats)
        form.addRow("Folder", where)

        self.log = QPlainTextEdit()
        self.log.setObjectName("exportLog")
        self.log.setReadOnly(True)
        self.log.setPlaceholderText(
            "Each file is reloaded and compared with the student on real test inputs; "
            "the model card adds accuracies, sizes and CPU latency.")

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = self.buttons.addButton("Export",
                                                    QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.setObjectName("exportRun")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.export)
        self.buttons.rejected.connect(self.reject)
        self.status = QLabel()
        self.status.setObjectName("exportStatus")

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self._update_enabled()

    def chosen_formats(self) -> list[str]:
        return [name for name, box in self.format_boxes.items() if box.isChecked()]

    @property
    def busy(self) -> bool:
        return self._thread is not None

    def _update_enabled(self) -> None:
        ready = bool(self.chosen_formats()) and bool(self.folder.text().strip())
        self.export_button.setEnabled(ready and not self.busy)
        self.buttons.button(QDialogButtonBox.StandardButton.Close).setEnabled(not self.busy)
        if self.busy:
            return
        if not self.chosen_formats():
            self.status.setText("Pick at least one format")
        elif not self.folder.text().strip():
            self.status.setText("Choose a folder")
        else:
            self.status.setText("")

    def _browse(self) -> None:
        folder = existing_folder(self, "Export folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _progress(self, message: str) -> None:
        self.status.setText(message + "…" if message != "Done" else message)

    def export(self) -> None:
        """Start the export in a worker thread; `exported` tells when it has ended."""
        if self.busy:
            return
        self.log.clear()
        worker = ExportWorker(self.db_path, self.run["id"], self.folder.text().strip(),
                              self.chosen_formats())
        worker.progress.connect(self._progress)
        worker.done.connect(self._finished)
        thread = worker_thread(worker, "kdstudio-export", worker.done)
        thread.finished.connect(thread.deleteLater)
        self._thread, self._worker = thread, worker
        QGuiApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
        self._update_enabled()
        thread.start()

    @Slot(object, str)
    def _finished(self, report: object, error_text: str) -> None:
        if self._thread is not None:
            self._thread.wait()
        self._thread = self._worker = None
        QGuiApplication.restoreOverrideCursor()
        self._update_enabled()
        self.report = report
        if error_text:
            self.log.setPlainText(f"Not exported: {error_text}")
            self.status.setText("Export failed")
            self.exported.emit(False)
            return
        self.log.setPlainText("\n".join(report.lines()))
        self.status.setText("Exported; every file matches the student" if report.ok
                            else "Exported, but a file failed or does NOT match the student "
                                 "(see above)")
        self.exported.emit(report.ok)

    def reject(self) -> None:
        if self.busy:  # the files are half written: let the export finish first
            self.status.setText("Exporting… the dialog closes once it has finished")
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.busy:
            event.ignore()
            self.status.setText("Exporting… the dialog closes once it has finished")
            return
        super().closeEvent(event)
