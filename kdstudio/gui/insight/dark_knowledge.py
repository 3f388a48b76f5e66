"""The dark-knowledge view of a finished run: what the teacher's soft targets carry, and
where the distilled student gains or loses against the student trained alone.

Panels (all pyqtgraph): the teacher's and the distilled student's mean soft-target matrices
at the run's temperature (class x class heat maps, insight/panels.py), per-class test
accuracy of teacher, baseline and student as grouped bars with the KD gain per class
(insight/class_accuracy.py), the confusion-matrix difference student minus baseline, and
one test example's teacher soft targets under a temperature slider (insight/example.py).

Loading a run means rebuilding its data and three models and predicting the test set
(a second or two for MNIST-1D): `kdstudio.core.analysis.dark_knowledge` runs as a background
task (gui/tasks.py) with its own Store; the widgets are filled in the GUI thread when it is
done. A run whose models were never saved (stopped, failed) or whose files are gone gets a
message in the view.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from kdstudio.gui.insight.class_accuracy import AccuracyPanel
from kdstudio.gui.insight.example import ExamplePanel
from kdstudio.gui.insight.panels import HeatMap
from kdstudio.gui.tasks import Task, TaskState
from kdstudio.gui.widgets.colours import PHASE_LABELS, SOFT_COLORMAP

# KD benefit per cell: red = worse for the student, white = no change, blue = better.
BENEFIT_COLORMAP = pg.ColorMap([0.0, 0.5, 1.0], [(178, 24, 43), (255, 255, 255), (33, 102, 172)])


def analyse_run(db_path: Path, run_id: int, state: TaskState) -> tuple[Any, dict[str, Any]]:
    """The run's DarkKnowledge and its row, read with a Store of this thread's own (a task
    function); ValueError says why a run has none to show."""
    from kdstudio.core.analysis import dark_knowledge
    from kdstudio.core.store import Store

    if not db_path.is_file():
        raise ValueError(f"the history file {db_path} does not exist")
    with Store(db_path) as store:
        row = store.get_run(run_id)
        if row is None:
            raise ValueError(f"run {run_id} is not in the history (deleted?)")
        if row["status"] == "running":
            raise ValueError(f"run {run_id} is still running: its dark knowledge "
                             "is shown when it has finished")
        return dark_knowledge(store, run_id), row


def analysis_error_text(run_id: int | None, error: BaseException) -> str:
    """What the view says about an analysis that raised `error`."""
    if isinstance(error, ValueError):
        return str(error)
    return f"cannot analyse run {run_id}: {type(error).__name__}: {error}"


class DarkKnowledgeView(QWidget):
    """Dark knowledge of one finished run; `set_run(db_path, run_id)` loads it."""

    loaded = Signal(int)  # run id, once every panel shows it
    failed = Signal(str)  # the message shown instead

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("darkKnowledgeView")
        self.db_path: Path | None = None
        self.run_id: int | None = None
        self.knowledge: Any = None  # kdstudio.core.analysis.DarkKnowledge of the shown run
        self.run: dict[str, Any] | None = None
        self._task: Task | None = None  # the analysis in progress
        self._pending = False  # a run was set while hidden: load it when shown
        self._loading = False

        self.title = QLabel("No run chosen")
        self.title.setObjectName("darkKnowledgeTitle")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.title.setWordWrap(True)
        self.off_diagonal = QCheckBox("Scale colours to the off-diagonal")
        self.off_diagonal.setObjectName("offDiagonalCheck")
        self.off_diagonal.setChecked(True)
        self.off_diagonal.setToolTip(
            "On: the colour scale of both soft-target maps ends at the largest off-diagonal "
            "value, so the small probabilities the teacher gives to wrong classes (the dark "
            "knowledge) are visible; the diagonal saturates. Off: the scale is 0 to 1.")
        self.off_diagonal.toggled.connect(self._apply_soft_levels)
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(self.off_diagonal)

        self.message = QLabel()
        self.message.setObjectName("darkKnowledgeMessage")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.teacher_map = HeatMap(
            "Teacher soft targets", "teacherSoftMap",
            "Row i: the teacher's soft targets softmax(z / T) at the run's temperature, "
            "averaged over the test examples of true class i.\nOff-diagonal mass shows which "
            "classes the teacher thinks alike: what the student learns beyond the labels.",
            SOFT_COLORMAP, "soft target for class", ".3f", label_diagonal=True)
        self.student_map = HeatMap(
            "Distilled student soft targets", "studentSoftMap",
            "The same matrix for the distilled student (student + KD) at the same temperature."
            "\nThe closer it is to the teacher's, the more of the teacher's class similarities "
            "the student took over.", SOFT_COLORMAP, "soft target for class", ".3f",
            label_diagonal=True)
        self.diff_map = HeatMap(
            "Confusion: student + KD − student alone", "confusionDiffMap",
            "Confusion matrix (row = true class, column = predicted class, test set) of the "
            "distilled student minus that of the student trained alone, in test samples.\n"
            "Blue: better with KD (more right on the diagonal, fewer of that mistake off it);"
            " red: worse.", BENEFIT_COLORMAP, "predicted class", "+.0f", label_all=True,
            colorbar_label="Δ samples (+ = better)")

        self.accuracy_panel = AccuracyPanel()
        self.example_panel = ExamplePanel()

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(8)
        grid.addWidget(self.teacher_map, 0, 0, 1, 2)
        grid.addWidget(self.student_map, 0, 2, 1, 2)
        grid.addWidget(self.diff_map, 0, 4, 1, 2)
        grid.addWidget(self.accuracy_panel, 1, 0, 1, 3)
        grid.addWidget(self.example_panel, 1, 3, 1, 3)
        for column in range(6):
            grid.setColumnStretch(column, 1)
        grid.setRowStretch(0, 1)
        grid.setRowStretch(1, 1)
        content = QWidget()
        content.setLayout(grid)

        self.stack = QStackedWidget()
        self.stack.addWidget(self.message)
        self.stack.addWidget(content)
        self.content = content
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(header)
        layout.addWidget(self.stack, 1)
        self._say("Choose a finished run: the Dark knowledge button of the History tab, or "
                  "run one from the Workbench.")

    # ------------------------------------------------------------ loading

    def set_run(self, db_path: str | Path, run_id: int, now: bool = False) -> None:
        """Show this run. Loads at once when the view is visible (or `now`), otherwise the
        first time it is shown, so a run nobody looks at costs nothing."""
        self.db_path = Path(db_path).expanduser()
        self.run_id = int(run_id)
        self._cancel_loading()
        self.title.setText(f"<b>Run #{self.run_id}</b>")
        self._say(f"Loading the models of run {self.run_id}…")
        if now or self.isVisible():
            self._start_loading()
        else:
            self._pending = True

    def forget_runs(self, run_ids: list[int]) -> None:
        """The runs were deleted: if one is shown, say so instead."""
        if self.run_id is not None and self.run_id in run_ids:
            self._cancel_loading()
            self._pending = False
            self._set_knowledge(None)
            self.title.setText(f"<b>Run #{self.run_id}</b>")
            self._say(f"Run {self.run_id} was deleted from the history.")

    @property
    def loading(self) -> bool:
        return self._loading

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._pending:
            self._start_loading()

    def _start_loading(self) -> None:
        assert self.db_path is not None and self.run_id is not None
        self._pending = False
        self._loading = True
        task = Task(analyse_run, self.db_path, self.run_id, name="kdstudio-dark-knowledge")
        task.result.connect(self._on_loaded)
        task.error.connect(self._on_failed)
        self._task = task
        task.start()

    @Slot(object)
    def _on_loaded(self, loaded: tuple[Any, dict[str, Any]]) -> None:
        self._task = None
        self._loading = False
        knowledge, run = loaded
        self._set_knowledge(knowledge)
        self.run = run
        self._show_title()
        self._draw_soft_maps()
        self._draw_confusion()
        self.accuracy_panel.show_knowledge(knowledge)
        self.example_panel.show_knowledge(knowledge)
        self.stack.setCurrentWidget(self.content)
        self.loaded.emit(self.run_id)

    @Slot(object)
    def _on_failed(self, error: BaseException) -> None:
        self._task = None
        self._loading = False
        self._set_knowledge(None)
        message = analysis_error_text(self.run_id, error)
        self._say(f"No dark knowledge to show for run {self.run_id}: {message}")
        self.failed.emit(message)

    def _cancel_loading(self) -> None:
        """Drop the analysis in progress: its result would be of the run shown before."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._loading = False

    def _set_knowledge(self, knowledge: Any) -> None:
        self.knowledge = self.accuracy_panel.knowledge = knowledge
        self.example_panel.knowledge = knowledge

    def _say(self, text: str) -> None:
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)

    def _show_title(self) -> None:
        run, knowledge = self.run or {}, self.knowledge
        data = (run.get("config") or {}).get("data", {})
        labels = ""
        if int(data.get("label_count") or 0) > 0:
            labels = f" · {int(data['label_count']):,} labels"
        elif float(data.get("label_fraction", 1.0) or 1.0) < 1.0:
            labels = f" · {float(data['label_fraction']):.0%} of the labels"
        if data.get("transfer", "labelled") != "labelled":
            labels += f" · transfer set: {html.escape(str(data.get('transfer')))}"
        accuracies = " · ".join(
            f"{PHASE_LABELS[kind]} <b>{run[f'{kind}_test_acc']:.1%}</b>"
            for kind in ("teacher", "baseline", "student")
            if isinstance(run.get(f"{kind}_test_acc"), (int, float)))
        name, status = html.escape(str(run.get("name") or "")), html.escape(str(run["status"]))
        dataset = html.escape(str(data.get("dataset", "")))
        method = str((run.get("config") or {}).get("distill", {}).get("method", ""))
        if method == "none":
            labels += " · method none: the student learned without the teacher"
        self.title.setText(
            f"<b>Run #{run.get('id', self.run_id)}</b> {name} — {status} · {dataset}, "
            f"{len(knowledge.y_test):,} test examples · T = {knowledge.temperature:g}{labels}"
            + (f"<br>Test accuracy: {accuracies}" if accuracies else ""))

    # ------------------------------------------------------------ drawing

    def _draw_soft_maps(self) -> None:
        knowledge = self.knowledge
        names = knowledge.class_names
        for kind, heat_map in (("teacher", self.teacher_map), ("student", self.student_map)):
            if kind in knowledge.logits:
                heat_map.set_matrix(knowledge.soft_matrix(kind).numpy(), names, (0.0, 1.0))
            else:
                model = "teacher" if kind == "teacher" else "distilled student"
                heat_map.clear_matrix(f"no {model} saved for this run")
        self.teacher_map.set_title("Teacher soft targets", f"(T = {knowledge.temperature:g})")
        self.student_map.set_title("Distilled student soft targets",
                                   f"(T = {knowledge.temperature:g})")
        self._apply_soft_levels()

    def _apply_soft_levels(self) -> None:
        maps = [m for m in (self.teacher_map, self.student_map) if m.values.size]
        top = 1.0
        if self.off_diagonal.isChecked() and maps:
            off = [m.values[~np.eye(len(m.values), dtype=bool)] for m in maps]
            largest = max((float(values.max()) for values in off if values.size), default=0.0)
            top = largest if largest > 0 else 1.0
        for heat_map in maps:
            heat_map.set_levels((0.0, top))

    def _draw_confusion(self) -> None:
        difference = self.knowledge.confusion_difference()
        if difference is None:
            self.diff_map.clear_matrix("needs the student alone and the\ndistilled student "
                                       "(a run with\nthe baseline on)")
            return
        values = difference.numpy().astype(float)
        reach = max(float(np.abs(values).max()), 1.0)
        sign = np.where(np.eye(len(values), dtype=bool), 1.0, -1.0)  # off-diagonal: fewer = better
        self.diff_map.set_matrix(values, self.knowledge.class_names, (-reach, reach), sign)
