"""The summary card: test accuracies, KD gain, compression and duration of the last run."""

from __future__ import annotations

import html
import math
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QWidget

from kdstudio.core.progress import clock
from kdstudio.gui.widgets.colours import LOG_COLORS, PHASE_COLORS, PHASE_LABELS


def _pct(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, (int, float)) and math.isfinite(value) else "—"


class SummaryCard(QFrame):
    """Test accuracies, KD gain, compression and duration of the finished run."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("summaryCard")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setToolTip("Results of the last run, as stored in the history database")
        grid = QGridLayout(self)
        grid.setContentsMargins(10, 8, 10, 8)
        self.title = QLabel("No run finished yet")
        self.title.setObjectName("summaryTitle")
        self.title.setWordWrap(True)
        grid.addWidget(self.title, 0, 0, 1, 3)
        for column, text in enumerate(("", "parameters", "test accuracy")):
            header = QLabel(f"<i>{text}</i>")
            grid.addWidget(header, 1, column)
        self.cells: dict[str, QLabel] = {}
        for row, (phase, key) in enumerate((("teacher", "Teacher"), ("baseline", "Baseline"),
                                            ("student", "Student")), start=2):
            name = QLabel(PHASE_LABELS[phase])
            name.setStyleSheet(f"color: {PHASE_COLORS[phase]}; font-weight: bold;")
            params, test = QLabel("—"), QLabel("—")
            params.setObjectName(f"summary{key}Params")
            test.setObjectName(f"summary{key}Test")
            for label in (params, test):
                label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(name, row, 0)
            grid.addWidget(params, row, 1)
            grid.addWidget(test, row, 2)
            self.cells[f"{phase}_params"] = params
            self.cells[f"{phase}_test_acc"] = test
        self.gain = QLabel()
        self.gain.setObjectName("summaryKdGain")
        self.compression = QLabel()
        self.compression.setObjectName("summaryCompression")
        self.duration = QLabel()
        self.duration.setObjectName("summaryDuration")
        self.error = QLabel()
        self.error.setObjectName("summaryError")
        self.error.setWordWrap(True)
        self.error.setStyleSheet(f"color: {LOG_COLORS['error']};")
        for row, label in enumerate((self.gain, self.compression, self.duration, self.error),
                                    start=5):
            grid.addWidget(label, row, 0, 1, 3)
        grid.setRowStretch(9, 1)
        self.clear()

    def clear(self) -> None:
        self.title.setText("No run finished yet")
        for label in self.cells.values():
            label.setText("—")
        self.gain.setText("KD gain: —")
        self.compression.setText("Compression: —")
        self.duration.setText("Duration: —")
        self.error.clear()
        self.error.hide()

    def show_tested(self, phase: str, accuracy: float) -> None:
        """A phase's test accuracy as soon as it is measured (the teacher's is known before
        the students train)."""
        cell = self.cells.get(f"{phase}_test_acc")
        if cell is not None:
            cell.setText(_pct(accuracy))

    def show_run(self, run: dict[str, Any]) -> None:
        """Fill from a history row (`Store.get_run`) or, failing that, an engine summary."""
        summary = run.get("summary") or {}

        def value(key: str) -> Any:
            found = run.get(key)
            return found if found is not None else summary.get(key)

        status = run.get("status", "")
        self.title.setText(f"<b>Run #{run.get('id', run.get('run_id', '?'))}</b> "
                           f"{html.escape(str(run.get('name') or ''))} — <b>{status}</b>")
        for phase in ("teacher", "baseline", "student"):
            acc = value(f"{phase}_test_acc")
            self.cells[f"{phase}_test_acc"].setText(_pct(acc))
            params = value("teacher_params" if phase == "teacher" else "student_params")
            trained = acc is not None
            self.cells[f"{phase}_params"].setText(f"{params:,}" if params and trained else "—")
        gain = value("kd_gain")
        self.gain.setText(f"KD gain: <b>{gain * 100:+.2f} points</b> (student + KD − student "
                          "alone, test)" if gain is not None else "KD gain: —")
        compression = value("compression")
        self.compression.setText(f"Compression: <b>{compression:.1f}×</b> fewer parameters"
                                 if compression else "Compression: —")
        duration = value("duration_s")
        self.duration.setText(f"Duration: {clock(duration)}" if duration is not None
                              else "Duration: —")
        error = run.get("error")
        self.error.setText(f"Error: {error}" if error else "")
        self.error.setVisible(bool(error))
