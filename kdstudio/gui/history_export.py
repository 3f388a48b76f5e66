"""The export dialog: pick formats and a folder, export a run's student, show the checks.

Export is short (seconds), so it runs in the GUI thread behind a busy cursor and a
progress line that updates between steps; the dialog is modal while it works.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
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

FORMAT_TIPS = {
    "safetensors": "student.safetensors + student.json: weights and everything needed to "
                   "rebuild the student with create_model",
    "torchscript": "student.pt: TorchScript, loads with torch.jit.load, no KD Studio needed",
    "onnx": "student.onnx: one ONNX file with a dynamic batch dimension (onnxruntime, ...)",
}


def default_export_dir(run: dict) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", run.get("name") or "run").strip("-") or "run"
    return Path.home() / "kdstudio-exports" / f"{slug}-{run['id']}"


class ExportDialog(QDialog):
    """Export one run's student; the report (files, max differences, latency) is shown."""

    def __init__(self, db_path: str | Path, run: dict, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.db_path = Path(db_path)
        self.run = run
        self.report = None
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

    def _update_enabled(self) -> None:
        ready = bool(self.chosen_formats()) and bool(self.folder.text().strip())
        self.export_button.setEnabled(ready)
        if not self.chosen_formats():
            self.status.setText("Pick at least one format")
        elif not self.folder.text().strip():
            self.status.setText("Choose a folder")
        else:
            self.status.setText("")

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _progress(self, message: str) -> None:
        self.status.setText(message + "…" if message != "Done" else message)
        QApplication.processEvents()

    def export(self) -> bool:
        """Run the export now; True when every file matched the student."""
        from kdstudio.core.export import ExportError, export_student

        self.export_button.setEnabled(False)
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        error_text = ""
        try:
            with Store(self.db_path) as store:
                self.report = export_student(store, self.run["id"], self.folder.text().strip(),
                                             self.chosen_formats(), on_progress=self._progress)
        except ExportError as error:
            error_text = str(error)
        finally:
            QGuiApplication.restoreOverrideCursor()
            self._update_enabled()
        if error_text:
            self.log.setPlainText(f"Not exported: {error_text}")
            self.status.setText("Export failed")
            return False
        self.log.setPlainText("\n".join(self.report.lines()))
        self.status.setText("Exported; every file matches the student" if self.report.ok
                            else "Exported, but a file does NOT match the student (see above)")
        return self.report.ok
