"""Where the form's teacher comes from: trained here, a weight file, or a saved run's teacher.

Not a config value of its own: `teacher.checkpoint` is empty (train), the file's path, or the
saved run's teacher artifact. The saved runs listed here also serve validation as the
history's teacher runs (`TeacherRuns`), so checking a reused run's dataset costs no query
per edit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QWidget

from kdstudio.core.config.tips import TIPS
from kdstudio.core.models import MODELS
from kdstudio.gui.setup.inputs import TextInput, no_wheel

SOURCE_TRAIN, SOURCE_FILE, SOURCE_RUN = "train", "file", "run"


class TeacherSource(QObject):
    """The source combo, the saved-run row and the checkpoint field they decide."""

    changed = Signal()
    model_found = Signal(str, object)  # arch, params: a sidecar or a saved run names them

    def __init__(self, checkpoint: TextInput, store_provider: Callable[[], Any] | None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.checkpoint = checkpoint
        self.store_provider = store_provider
        self.runs: dict[int, dict[str, Any]] = {}
        self._runs_loaded = False
        self._teacher_runs: list[dict[str, Any]] = []
        self.combo = QComboBox()
        self.combo.setObjectName("teacherSourceCombo")
        self.combo.setToolTip(TIPS["teacher.source"])
        no_wheel(self.combo)
        self.combo.addItem("Train it here", SOURCE_TRAIN)
        self.combo.addItem("Load a checkpoint file", SOURCE_FILE)
        self.combo.addItem("Reuse the teacher of a saved run", SOURCE_RUN)
        self.combo.currentIndexChanged.connect(self._on_source_changed)
        self.run_combo = QComboBox()
        self.run_combo.setObjectName("teacherRunCombo")
        self.run_combo.setToolTip(TIPS["teacher.run"])
        self.run_combo.currentIndexChanged.connect(self._on_run_changed)
        self.run_row = QWidget()
        line = QHBoxLayout(self.run_row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.run_combo, 1)
        refresh = QPushButton("Refresh")
        refresh.setToolTip("Reload the list of saved runs that have a trained teacher")
        refresh.clicked.connect(self.refresh_saved_runs)
        line.addWidget(refresh)
        checkpoint.widget.editingFinished.connect(self.adopt_sidecar)

    def source(self) -> str:
        return self.combo.currentData()

    def set_source(self, source: str) -> None:
        self.combo.setCurrentIndex(self.combo.findData(source))

    def value(self) -> str:
        """`teacher.checkpoint` as the source gives it."""
        if self.source() == SOURCE_FILE:
            return self.checkpoint.widget.text().strip()
        if self.source() == SOURCE_RUN:
            run = self.runs.get(self.run_combo.currentData())
            return run["artifact_path"] if run else ""
        return ""

    def problems(self, uses_teacher: bool) -> list[str]:
        """A file source with no file, or a run source with no run."""
        if self.source() == SOURCE_FILE and uses_teacher and not self.value():
            return ["teacher.checkpoint: choose the teacher's weight file (or set the source to "
                    "Train it here)"]
        if self.source() == SOURCE_RUN and self.run_combo.currentData() is None:
            return ["teacher.checkpoint: pick a saved run whose teacher to reuse (none has a "
                    "teacher yet: train one first)"]
        return []

    def _on_source_changed(self, *_args: Any) -> None:
        if self.source() == SOURCE_RUN:
            self.refresh_saved_runs()
        self.changed.emit()

    # ------------------------------------------------------------ saved runs

    def runs_with_artifact(self, kind: str, limit: int = 500) -> list[dict[str, Any]]:
        """The history's runs with a teacher (`TeacherRuns`), as last listed."""
        if kind != "teacher":
            return []
        if not self._runs_loaded:  # read once (not per edit), without touching the list
            store = self.store_provider() if self.store_provider else None
            self._teacher_runs = store.runs_with_artifact("teacher", limit=500) if store else []
            self._runs_loaded = True
        return self._teacher_runs[:limit]

    def refresh_saved_runs(self) -> None:
        """List saved runs that have a trained teacher, newest first."""
        store = self.store_provider() if self.store_provider else None
        current = self.run_combo.currentData()
        self.runs = {}
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        if store is not None:
            for run in store.runs_with_artifact("teacher", limit=500):
                self.runs[run["id"]] = run
                acc = run.get("teacher_test_acc")
                text = (f"#{run['id']} {run['name']} — {run['teacher_arch']} on "
                        f"{run['dataset']}" + (f", test {acc:.1%}" if acc is not None else ""))
                self.run_combo.addItem(text, run["id"])
        self._teacher_runs = list(self.runs.values())
        self._runs_loaded = store is not None
        if not self.runs:
            self.run_combo.addItem("no saved run has a teacher yet", None)
        index = self.run_combo.findData(current)
        self.run_combo.setCurrentIndex(max(index, 0))
        self.run_combo.blockSignals(False)
        self._on_run_changed()

    def history_changed(self) -> None:
        self._runs_loaded = False
        if self.source() == SOURCE_RUN:
            self.refresh_saved_runs()

    def select_saved_run(self, run_id: int) -> None:
        self.set_source(SOURCE_RUN)
        index = self.run_combo.findData(run_id)
        if index >= 0:
            self.run_combo.setCurrentIndex(index)

    def _on_run_changed(self, *_args: Any) -> None:
        run = self.runs.get(self.run_combo.currentData())
        if run is not None and self.source() == SOURCE_RUN:
            teacher = run["config"].get("teacher", {})
            self.model_found.emit(teacher.get("arch", ""), teacher.get("params", {}))
        self.changed.emit()

    def adopt_sidecar(self) -> None:
        """A weight file saved by KD Studio has `<stem>.json` beside it: take its model."""
        text = self.checkpoint.widget.text().strip()
        if not text:
            return
        try:
            spec = json.loads(Path(text).expanduser().with_suffix(".json").read_text(
                encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(spec, dict) and spec.get("arch") in MODELS:
            self.model_found.emit(spec["arch"], dict(spec.get("params") or {}))
