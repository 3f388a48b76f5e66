"""The dark-knowledge view of a finished run: what the teacher's soft targets carry, and
where the distilled student gains or loses against the student trained alone.

Panels (all pyqtgraph): the teacher's and the distilled student's mean soft-target matrices
at the run's temperature (class x class heat maps), per-class test accuracy of teacher,
baseline and student as grouped bars with the KD gain per class, the confusion-matrix
difference student minus baseline, and one test example's teacher soft targets under a
temperature slider.

Loading a run means rebuilding its data and three models and predicting the test set
(a second or two for MNIST-1D): `kdstudio.core.analysis.dark_knowledge` runs in a QObject
worker on a QThread with its own Store; the widgets are filled in the GUI thread when it
is done. A run whose models were never saved (stopped, failed) or whose files are gone gets
a message in the view.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QThread, Signal, Slot
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from kdstudio.gui.run.live_view import PHASE_COLORS, PHASE_LABELS
from kdstudio.gui.run.worker import worker_thread

T_MIN, T_MAX, T_STEP = 0.5, 20.0, 0.1  # the temperature slider: 0.1 steps from 0.5 to 20
SOFT_COLORMAP = "CET-L17"  # sequential, white (0) to dark
# diverging for differences: blue (< 0), pure white at 0, red (> 0)
DIFF_COLORMAP = pg.ColorMap([0.0, 0.5, 1.0], [(33, 102, 172), (255, 255, 255), (178, 24, 43)])
GAIN_COLORS = {True: "#2e7d32", False: "#c62828"}
MAX_LABELLED_CLASSES = 20  # more classes: no values written in the heat maps' cells
PERCENT_TICKS = [(v / 5, f"{v * 20} %") for v in range(6)]
PROBABILITY_TICKS = [(v / 5, f"{v / 5:.1f}") for v in range(6)]
# Analysis threads and their workers, referenced until Qt has deleted the thread (after it
# finished), so that neither is collected while it runs, even if its view is deleted.
_LIVE: dict[QThread, QObject] = {}


def slider_value(temperature: float) -> int:
    """The slider position of a temperature (clamped to the slider's range)."""
    clamped = min(max(temperature, T_MIN), T_MAX)
    return round(clamped / T_STEP)


def slider_temperature(value: int) -> float:
    return round(value * T_STEP, 6)


def entropy(probs: np.ndarray) -> float:
    """Shannon entropy in nats of one distribution."""
    p = probs[probs > 0]
    return float(-(p * np.log(p)).sum())


# ---------------------------------------------------------------- background loading


def _keep(thread: QThread, worker: QObject) -> None:
    for old in [t for t in _LIVE if not shiboken6.isValid(t)]:
        del _LIVE[old]
    _LIVE[thread] = worker


def wait_for_analyses(timeout_ms: int = 30_000) -> bool:
    """Block until every analysis thread has ended (call before the application quits);
    False if one is still running after `timeout_ms`."""
    done = True
    for thread in list(_LIVE):
        if shiboken6.isValid(thread) and thread.isRunning():
            done = thread.wait(timeout_ms) and done
    return done


class AnalysisWorker(QObject):
    """Computes `dark_knowledge` for one run with its own Store (it lives in its own thread)."""

    loaded = Signal(int, object, object)  # request number, DarkKnowledge, run row
    failed = Signal(int, str)  # request number, message for the user
    finished = Signal()

    def __init__(self, db_path: Path, run_id: int, request: int) -> None:
        super().__init__()  # no parent: it is moved to the worker thread
        self.db_path = db_path
        self.run_id = run_id
        self.request = request

    @Slot()
    def run(self) -> None:
        try:
            knowledge, row = self._analyse()
        except ValueError as error:
            self.failed.emit(self.request, str(error))
        except Exception as error:  # noqa: BLE001 - a message in the view, never a traceback
            self.failed.emit(self.request, f"cannot analyse run {self.run_id}: "
                                           f"{type(error).__name__}: {error}")
        else:
            self.loaded.emit(self.request, knowledge, row)
        finally:
            self.finished.emit()

    def _analyse(self) -> tuple[Any, dict[str, Any]]:
        from kdstudio.core.analysis import dark_knowledge
        from kdstudio.core.store import Store

        if not self.db_path.is_file():
            raise ValueError(f"the history file {self.db_path} does not exist")
        store = Store(self.db_path)
        try:
            row = store.get_run(self.run_id)
            if row is None:
                raise ValueError(f"run {self.run_id} is not in the history (deleted?)")
            if row["status"] == "running":
                raise ValueError(f"run {self.run_id} is still running: its dark knowledge "
                                 "is shown when it has finished")
            return dark_knowledge(store, self.run_id), row
        finally:
            store.close()


# ---------------------------------------------------------------- panels


class Panel(QWidget):
    """A titled pyqtgraph plot with a read-out of the value under the cursor."""

    def __init__(self, title: str, object_name: str, tooltip: str,
                 describe: Callable[[float, float], str] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._describe = describe
        self.plot = pg.PlotWidget()
        self.plot.setObjectName(object_name)
        self.plot.setBackground("w")
        self.plot.setMinimumSize(220, 180)
        self.plot.setToolTip(tooltip)
        self.item = self.plot.getPlotItem()
        self.item.setMenuEnabled(False)
        self.item.hideButtons()
        self.title = QLabel()
        self.title.setToolTip(tooltip)
        self.set_title(title)
        self.hover = QLabel()
        self.hover.setObjectName(f"{object_name}Hover")
        self.hover.setTextFormat(Qt.TextFormat.RichText)
        self.hover.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.hover.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.note = pg.TextItem("", color=(120, 120, 120), anchor=(0.5, 0.5))
        self.note.setVisible(False)
        self.item.addItem(self.note, ignoreBounds=True)
        top = QHBoxLayout()
        top.setContentsMargins(2, 0, 2, 0)
        top.addWidget(self.title)
        top.addWidget(self.hover, 1)
        self.top = top
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)

    def set_title(self, title: str, detail: str = "") -> None:
        self.title.setText(f"<b>{html.escape(title)}</b>"
                           + (f" {html.escape(detail)}" if detail else ""))

    def say(self, text: str) -> None:
        """A grey note in the middle of the plot (empty: none)."""
        self.note.setText(text)
        self.note.setVisible(bool(text))
        if text:
            view = self.item.getViewBox().viewRange()
            self.note.setPos((view[0][0] + view[0][1]) / 2, (view[1][0] + view[1][1]) / 2)

    def blank(self, text: str) -> None:
        """No data: empty axes with a note in the middle."""
        for side in ("bottom", "left"):
            self.item.getAxis(side).setTicks([[]])
        self.item.getViewBox().setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.say(text)

    def _mouse_moved(self, position: QPointF) -> None:
        box = self.item.getViewBox()
        if not box.sceneBoundingRect().contains(position):
            self.hover.clear()
            return
        point = box.mapSceneToView(position)
        self.hover.setText(self.describe(point.x(), point.y()))

    def describe(self, x: float, y: float) -> str:
        """The hover text at view coordinates (x, y)."""
        return self._describe(x, y) if self._describe is not None else ""


class MatrixImage(pg.GraphicsObject):
    """A matrix drawn as one coloured cell per entry, cell (row i, column j) covering
    [j, j + 1] x [i, i + 1] in view coordinates.

    The colours are computed here (colour map over `levels`, clipped) into a QImage that Qt
    owns outright (a deep copy): nothing Qt paints from points into a numpy buffer that
    Python may free or reuse, as pyqtgraph's ImageItem does.
    """

    def __init__(self, colormap: pg.ColorMap) -> None:
        super().__init__()
        self.colormap = colormap
        self.values = np.zeros((0, 0))
        self.levels = (0.0, 1.0)
        self.qimage = QImage()

    def set_values(self, values: np.ndarray, levels: tuple[float, float]) -> None:
        self.prepareGeometryChange()
        self.values = np.array(values, dtype=float)  # a copy of its own
        self.set_levels(levels)

    def set_levels(self, levels: tuple[float, float]) -> None:
        self.levels = (float(levels[0]), float(levels[1]))
        self.qimage = self._render()
        self.update()

    def colors(self) -> np.ndarray:
        """RGBA bytes (rows x columns x 4) of the cells as drawn."""
        low, high = self.levels
        scaled = (self.values - low) / (high - low) if high > low else self.values * 0.0
        finite = np.isfinite(scaled)
        clipped = np.clip(np.where(finite, scaled, 0.0), 0.0, 1.0)
        rgba = np.asarray(self.colormap.map(clipped.ravel(), mode="byte"), dtype=np.uint8)
        rgba = rgba.reshape(*self.values.shape, -1)
        if rgba.shape[-1] == 3:
            rgba = np.concatenate([rgba, np.full((*rgba.shape[:-1], 1), 255, np.uint8)], -1)
        rgba[~finite] = 0  # no value (NaN): a transparent cell
        return np.ascontiguousarray(rgba)

    def _render(self) -> QImage:
        rows, columns = self.values.shape
        if rows == 0 or columns == 0:
            return QImage()
        data = self.colors().tobytes()
        return QImage(data, columns, rows, 4 * columns, QImage.Format.Format_RGBA8888).copy()

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt's name)
        rows, columns = self.values.shape
        return QRectF(0.0, 0.0, float(columns), float(rows))

    def paint(self, painter: QPainter, *_args: Any) -> None:
        if not self.qimage.isNull():
            painter.drawImage(self.boundingRect(), self.qimage)


class HeatMap(Panel):
    """A class x class matrix as an image: row = true class, column = the other class."""

    def __init__(self, title: str, object_name: str, tooltip: str, colormap: str | pg.ColorMap,
                 x_label: str, value_format: str, label_diagonal: bool = False) -> None:
        """`label_diagonal`: write each diagonal value in its cell (for a colour scale
        that may saturate on the diagonal)."""
        super().__init__(title, object_name, tooltip)
        self.class_names: list[str] = []
        self.value_format = value_format
        self.label_diagonal = label_diagonal
        self.cell_labels: list[pg.TextItem] = []
        if isinstance(colormap, str):
            colormap = pg.colormap.get(colormap)
        self.image = MatrixImage(colormap)
        self.item.addItem(self.image)
        box = self.item.getViewBox()
        box.invertY(True)  # row 0 at the top, as a matrix is read
        box.setAspectLocked(False)
        box.setMouseEnabled(x=False, y=False)
        self.item.setLabel("left", "true class")
        self.item.setLabel("bottom", x_label)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=colormap,
                                        interactive=False, width=12, pen="#888",
                                        colorMapMenu=False)
        self.colorbar.setColorMap(colormap)  # draws the bar; no image item is attached
        self.item.layout.addItem(self.colorbar, 2, 5)  # right of the plot, as pyqtgraph does
        self.item.layout.setColumnFixedWidth(4, 5)

    @property
    def values(self) -> np.ndarray:
        """The matrix shown (rows x columns); empty when none is."""
        return self.image.values

    def set_matrix(self, matrix: np.ndarray, class_names: list[str],
                   levels: tuple[float, float]) -> None:
        self.class_names = list(class_names)
        self.colorbar.setLevels(levels)
        self.image.set_values(np.asarray(matrix, dtype=float), levels)
        n = len(class_names)
        short = [name if len(name) <= 3 else str(i) for i, name in enumerate(class_names)]
        rows = [name if name == s or str(i) in name else f"{i} {name}"
                for i, (name, s) in enumerate(zip(class_names, short, strict=True))]
        self.item.getAxis("bottom").setTicks([[(i + 0.5, s) for i, s in enumerate(short)]])
        self.item.getAxis("left").setTicks([[(i + 0.5, s) for i, s in enumerate(rows)]])
        self.item.getViewBox().setRange(xRange=(0, n), yRange=(0, n), padding=0)
        self.image.setVisible(True)
        self._label_cells()
        self.say("")

    def _label_cells(self) -> None:
        for label in self.cell_labels:
            self.item.removeItem(label)
        self.cell_labels = []
        n = len(self.values)
        if not self.label_diagonal or n > MAX_LABELLED_CLASSES:
            return
        for i in range(n):
            label = pg.TextItem(format(self.values[i, i], ".2f"), color="w",
                                anchor=(0.5, 0.5))
            label.setPos(i + 0.5, i + 0.5)
            self.item.addItem(label)
            self.cell_labels.append(label)

    def set_levels(self, levels: tuple[float, float]) -> None:
        self.colorbar.setLevels(levels)
        self.image.set_levels(levels)

    def clear_matrix(self, text: str) -> None:
        self.image.set_values(np.zeros((0, 0)), self.image.levels)
        self.image.setVisible(False)
        self._label_cells()
        self.blank(text)

    def describe(self, x: float, y: float) -> str:
        n = self.values.shape[0]
        row, column = math.floor(y), math.floor(x)
        if not (0 <= row < n and 0 <= column < n):
            return ""
        value = format(self.values[row, column], self.value_format)
        return (f"true <b>{html.escape(self.class_names[row])}</b> → "
                f"<b>{html.escape(self.class_names[column])}</b>: {value}")


# ---------------------------------------------------------------- the view


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
        self._request = 0
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
            "distilled student minus that of the student trained alone.\nRed on the diagonal:"
            " more examples right with KD; red off the diagonal: more of that mistake with "
            "KD; blue: fewer.", DIFF_COLORMAP, "predicted class", "+.0f")

        self.accuracy_panel = Panel(
            "Per-class test accuracy", "classAccuracyPlot",
            "Test accuracy within each true class for the teacher, the student trained alone "
            "(baseline) and the distilled student.\nThe number above each group is the KD gain"
            " in points: student + KD − student alone (green: KD helped).",
            self._describe_accuracy)
        self.accuracy_panel.item.setLabel("left", "test accuracy")
        self.accuracy_panel.item.getAxis("left").setTicks([PERCENT_TICKS])
        self.accuracy_panel.item.showGrid(y=True, alpha=0.25)
        self.accuracy_panel.item.getViewBox().setMouseEnabled(x=False, y=False)
        self.accuracy_legend = self.accuracy_panel.item.addLegend(
            offset=(-6, 4), labelTextSize="8pt", colCount=3)
        self.accuracy_legend.setBrush(pg.mkBrush(255, 255, 255, 220))
        self.accuracy_bars: dict[str, pg.BarGraphItem] = {}
        self.gain_labels: list[pg.TextItem] = []

        self.example_panel = Panel(
            "Teacher soft targets of one test example", "softTargetBars",
            "softmax(z / T) of the teacher's logits z for the chosen test example. Filled "
            "bars: at the slider's temperature T; outlines: at T = 1 (plain softmax).\nA "
            "higher T flattens the distribution and shows the small probabilities of the "
            "wrong classes that KD passes on; the true class is drawn darker.",
            self._describe_example)
        self.example_panel.item.setLabel("left", "probability")
        self.example_panel.item.setLabel("bottom", "class")
        self.example_panel.item.getAxis("left").setTicks([PROBABILITY_TICKS])
        self.example_panel.item.showGrid(y=True, alpha=0.25)
        self.example_panel.item.getViewBox().setMouseEnabled(x=False, y=False)
        self.soft_bars = pg.BarGraphItem(x=[], height=[], width=0.7)
        self.plain_bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=None,
                                          pen=pg.mkPen("#333333", width=1,
                                                       style=Qt.PenStyle.DashLine))
        self.example_panel.item.addItem(self.soft_bars)
        self.example_panel.item.addItem(self.plain_bars)
        self.example_probs = np.zeros(0)
        self.example_plain = np.zeros(0)

        self.example_spin = QSpinBox()
        self.example_spin.setObjectName("exampleSpin")
        self.example_spin.setRange(0, 0)
        self.example_spin.setToolTip("Index of the test example whose teacher soft targets "
                                     "are shown")
        self.example_spin.valueChanged.connect(self._draw_example)
        self.example_info = QLabel()
        self.example_info.setObjectName("exampleInfo")
        self.example_info.setTextFormat(Qt.TextFormat.RichText)
        self.temperature_slider = QSlider(Qt.Orientation.Horizontal)
        self.temperature_slider.setObjectName("temperatureSlider")
        self.temperature_slider.setRange(slider_value(T_MIN), slider_value(T_MAX))
        self.temperature_slider.setValue(slider_value(4.0))
        self.temperature_slider.setToolTip(
            f"Temperature T of softmax(z / T) for the example's bars ({T_MIN:g} to "
            f"{T_MAX:g}). KD trains the student on the teacher's soft targets at the run's T.")
        self.temperature_slider.valueChanged.connect(self._draw_example)
        self.temperature_label = QLabel()
        self.temperature_label.setObjectName("temperatureLabel")
        self.temperature_label.setMinimumWidth(60)
        self.run_temperature_button = QPushButton("Run's T")
        self.run_temperature_button.setObjectName("runTemperatureButton")
        self.run_temperature_button.setToolTip("Set the slider to the temperature the run "
                                               "distilled at")
        self.run_temperature_button.clicked.connect(self._reset_temperature)
        controls = QGridLayout()
        controls.setContentsMargins(2, 0, 2, 0)
        controls.addWidget(QLabel("Test example"), 0, 0)
        controls.addWidget(self.example_spin, 0, 1)
        controls.addWidget(self.example_info, 0, 2, 1, 3)
        controls.addWidget(QLabel("Temperature"), 1, 0)
        controls.addWidget(self.temperature_slider, 1, 1, 1, 2)
        controls.addWidget(self.temperature_label, 1, 3)
        controls.addWidget(self.run_temperature_button, 1, 4)
        controls.setColumnStretch(2, 1)
        self.example_panel.layout().addLayout(controls)

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
        self._update_temperature_label()

    # ------------------------------------------------------------ loading

    def set_run(self, db_path: str | Path, run_id: int, now: bool = False) -> None:
        """Show this run. Loads at once when the view is visible (or `now`), otherwise the
        first time it is shown, so a run nobody looks at costs nothing."""
        self.db_path = Path(db_path).expanduser()
        self.run_id = int(run_id)
        self._request += 1
        self.title.setText(f"<b>Run #{self.run_id}</b>")
        self._say(f"Loading the models of run {self.run_id}…")
        if now or self.isVisible():
            self._start_loading()
        else:
            self._pending = True

    def forget_runs(self, run_ids: list[int]) -> None:
        """The runs were deleted: if one is shown, say so instead."""
        if self.run_id is not None and self.run_id in run_ids:
            self._request += 1
            self._pending = False
            self.knowledge = None
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
        worker = AnalysisWorker(self.db_path, self.run_id, self._request)
        worker.loaded.connect(self._on_loaded)
        worker.failed.connect(self._on_failed)
        thread = worker_thread(worker, "kdstudio-dark-knowledge", worker.finished)
        thread.finished.connect(thread.deleteLater)
        _keep(thread, worker)
        thread.start()

    @Slot(int, object, object)
    def _on_loaded(self, request: int, knowledge: Any, run: dict[str, Any]) -> None:
        if request != self._request:
            return  # a newer run was chosen meanwhile
        self._loading = False
        self.knowledge = knowledge
        self.run = run
        self._show_title()
        self._draw_soft_maps()
        self._draw_confusion()
        self._draw_accuracy()
        count = len(knowledge.y_test)
        self.example_spin.blockSignals(True)
        self.example_spin.setRange(0, max(count - 1, 0))
        self.example_spin.setValue(min(self.example_spin.value(), max(count - 1, 0)))
        self.example_spin.blockSignals(False)
        self.temperature_slider.blockSignals(True)
        self.temperature_slider.setValue(slider_value(knowledge.temperature))
        self.temperature_slider.blockSignals(False)
        self._draw_example()
        self.stack.setCurrentWidget(self.content)
        self.loaded.emit(self.run_id)

    @Slot(int, str)
    def _on_failed(self, request: int, message: str) -> None:
        if request != self._request:
            return
        self._loading = False
        self.knowledge = None
        self._say(f"No dark knowledge to show for run {self.run_id}: {message}")
        self.failed.emit(message)

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
        self.diff_map.set_matrix(values, self.knowledge.class_names, (-reach, reach))

    def _draw_accuracy(self) -> None:
        knowledge, item = self.knowledge, self.accuracy_panel.item
        for bars in self.accuracy_bars.values():
            item.removeItem(bars)
        for label in self.gain_labels:
            item.removeItem(label)
        self.accuracy_bars, self.gain_labels = {}, []
        self.accuracy_legend.clear()
        kinds = [kind for kind in ("teacher", "baseline", "student") if kind in knowledge.accuracy]
        n = knowledge.num_classes
        width = 0.8 / max(len(kinds), 1)
        for k, kind in enumerate(kinds):
            heights = np.nan_to_num(knowledge.accuracy[kind].numpy().astype(float))
            x = np.arange(n) + (k - (len(kinds) - 1) / 2) * width
            bars = pg.BarGraphItem(x=x, height=heights, width=width * 0.92,
                                   brush=pg.mkBrush(PHASE_COLORS[kind]), pen=pg.mkPen(None),
                                   name=PHASE_LABELS[kind])
            item.addItem(bars)
            self.accuracy_bars[kind] = bars
        gain = knowledge.class_gain()
        if gain is not None:
            tops = np.max(np.stack([np.nan_to_num(knowledge.accuracy[k].numpy())
                                    for k in kinds]), axis=0)
            for i, value in enumerate(gain.tolist()):
                if math.isnan(value):
                    continue
                label = pg.TextItem(f"{value * 100:+.0f}", color=GAIN_COLORS[value >= 0],
                                    anchor=(0.5, 1.0))
                label.setPos(i, float(tops[i]) + 0.01)
                item.addItem(label)
                self.gain_labels.append(label)
        item.getAxis("bottom").setTicks([[(i, name) for i, name in
                                          enumerate(knowledge.class_names)]])
        item.getViewBox().setRange(xRange=(-0.6, n - 0.4), yRange=(0, 1.3), padding=0)
        self.accuracy_panel.say("")

    def _draw_example(self) -> None:
        self._update_temperature_label()
        knowledge = self.knowledge
        if knowledge is None:
            return
        if "teacher" not in knowledge.logits:
            self.example_probs = self.example_plain = np.zeros(0)
            self.soft_bars.setOpts(x=[], height=[], brushes=None)
            self.plain_bars.setOpts(x=[], height=[])
            self.example_panel.blank("no teacher saved for this run")
            self.example_info.setText("")
            return
        index = self.example_spin.value()
        temperature = self.temperature
        probs = knowledge.example_soft_targets("teacher", index, temperature).numpy()
        plain = knowledge.example_soft_targets("teacher", index, 1.0).numpy()
        self.example_probs, self.example_plain = probs.astype(float), plain.astype(float)
        true_class = int(knowledge.y_test[index])
        n = len(probs)
        colour = PHASE_COLORS["teacher"]
        brushes = [pg.mkBrush(colour) if c == true_class else pg.mkBrush(colour + "70")
                   for c in range(n)]
        self.soft_bars.setOpts(x=np.arange(n), height=self.example_probs, width=0.7,
                               brushes=brushes, pen=pg.mkPen(None))
        self.plain_bars.setOpts(x=np.arange(n), height=self.example_plain, width=0.7)
        names = knowledge.class_names
        predicted = int(plain.argmax())
        verdict = "right" if predicted == true_class else "wrong"
        self.example_info.setText(
            f"true class <b>{html.escape(names[true_class])}</b> · teacher predicts "
            f"<b>{html.escape(names[predicted])}</b> ({verdict}) · entropy at T: "
            f"{entropy(self.example_probs):.2f} nats (max {math.log(n):.2f})")
        item = self.example_panel.item
        item.getAxis("bottom").setTicks([[(i, name) for i, name in enumerate(names)]])
        item.getViewBox().setRange(xRange=(-0.6, n - 0.4), yRange=(0, 1.02), padding=0)
        self.example_panel.say("")

    # ------------------------------------------------------------ small parts

    @property
    def temperature(self) -> float:
        """The slider's temperature."""
        return slider_temperature(self.temperature_slider.value())

    def _update_temperature_label(self) -> None:
        self.temperature_label.setText(f"T = {self.temperature:.1f}")
        self.example_panel.set_title("Teacher soft targets of one test example",
                                     f"· filled: T = {self.temperature:.1f} · dashed: T = 1")

    def _reset_temperature(self) -> None:
        if self.knowledge is not None:
            self.temperature_slider.setValue(slider_value(self.knowledge.temperature))

    def _describe_accuracy(self, x: float, _y: float) -> str:
        if self.knowledge is None:
            return ""
        i = round(x)
        if not 0 <= i < self.knowledge.num_classes:
            return ""
        parts = [f"<b>{html.escape(self.knowledge.class_names[i])}</b>"]
        for kind, accuracy in self.knowledge.accuracy.items():
            value = float(accuracy[i])
            parts.append(f"{PHASE_LABELS[kind]} {value:.1%}" if not math.isnan(value)
                         else f"{PHASE_LABELS[kind]} —")
        gain = self.knowledge.class_gain()
        if gain is not None and not math.isnan(float(gain[i])):
            parts.append(f"gain {float(gain[i]) * 100:+.1f} points")
        return " · ".join(parts)

    def _describe_example(self, x: float, _y: float) -> str:
        if self.knowledge is None or not self.example_probs.size:
            return ""
        i = round(x)
        if not 0 <= i < len(self.example_probs):
            return ""
        return (f"<b>{html.escape(self.knowledge.class_names[i])}</b>: "
                f"{self.example_probs[i]:.3f} at T = {self.temperature:.1f}, "
                f"{self.example_plain[i]:.3f} at T = 1")
