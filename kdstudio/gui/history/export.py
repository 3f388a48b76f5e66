"""The export dialog: pick formats and a folder, export a run's student, show the checks.

The export (a few seconds: ONNX tracing, the checks, CPU latency timing) runs as a background
task (gui/tasks.py) with its own Store, so the window stays responsive and a run in progress
can still be stopped; the dialog shows each step as it happens.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
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
from kdstudio.gui.tasks import Task, TaskState
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


def export_task(db_path: Path, run_id: int, folder: str, formats: list[str],
                state: TaskState) -> object:
    """Export the run's student with a Store of this thread's own (a task function: each
    step's name is reported); returns the ExportReport."""
    from kdstudio.core.export import export_student

    with Store(db_path) as store:
        return export_student(store, run_id, folder, formats, on_progress=state.report)


def export_error_text(error: BaseException) -> str:
    """What the dialog says about an export that raised `error`."""
    from kdstudio.core.export import ExportError

    if isinstance(error, ExportError):
        return str(error)
    return f"{type(error).__name__}: {error}"


class ExportDialog(QDialog):
    """Export one run's student; the report (files, max differences, latency) is shown."""

    exported = Signal(bool)  # the export ended: True when every file matched the student

    def __init__(self, db_path: str | Path, run: dict, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.db_path = Path(db_path)
        self.run = run
        self.report = None
        self._task: Task | None = None
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
        return self._task is not None

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
        """Start the export in the background; `exported` tells when it has ended."""
        if self.busy:
            return
        self.log.clear()
        task = Task(export_task, self.db_path, self.run["id"], self.folder.text().strip(),
                    self.chosen_formats(), name="kdstudio-export")
        task.progress.connect(self._progress)
        task.result.connect(self._exported)
        task.error.connect(self._failed)
        self._task = task
        QGuiApplication.setOverrideCursor(Qt.CursorShape.BusyCursor)
        self._update_enabled()
        task.start()

    @Slot(object)
    def _exported(self, report: object) -> None:
        self._finished(report, "")

    @Slot(object)
    def _failed(self, error: BaseException) -> None:
        self._finished(None, export_error_text(error))

    def _finished(self, report: object, error_text: str) -> None:
        self._task = None
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
