"""The compare view: two or more runs side by side.

Curves of any metric overlaid (a stable colour per run, debiased-EMA smoothing, log-y,
x = step, epoch or wall time); a summary table of best and last values and test
accuracies; a Pareto scatter of student size (parameters, MB or measured latency) against
test accuracy with teachers marked; a config diff with a "differences only" switch. Runs
whose configs differ only in seed can be grouped and drawn as mean ± std. A parallel-coordinates
chart (compare/parallel.py) puts the config keys that differ and a metric on axes; its
brushes choose the runs the tables show. `show_group(group_id)` opens a sweep on it.

This module holds the run list and the controls and tells its parts what to show: the
curves (compare/curves.py), the Pareto scatter (compare/pareto.py) and the tables
(compare/tables.py); compare/data.py computes what they draw, without Qt.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from kdstudio.core.run_query import MISSING
from kdstudio.core.run_table import flatten, mean_std
from kdstudio.gui.compare.curve_panel import CurvePanel
from kdstudio.gui.compare.curves import CurveOverlay
from kdstudio.gui.compare.data import X_MODES, Series, best_of, build_series, group_by_seed
from kdstudio.gui.compare.parallel import ParallelPanel
from kdstudio.gui.compare.parallel_data import Line, metric_value, varying_keys
from kdstudio.gui.compare.pareto import ParetoPanel
from kdstudio.gui.compare.tables import DiffPanel, SummaryTable, run_label
from kdstudio.gui.widgets.colours import run_colour
from kdstudio.gui.widgets.history_store import HistoryArg, view_store

PREFERRED_METRICS = ("val/acc", "val/loss", "loss/total", "val/agreement", "train/acc")


class CompareView(QWidget):
    """Compare saved runs; `set_runs(ids)` picks them, so does ticking them in the list."""

    runs_changed = Signal(object)  # list of run ids

    def __init__(self, db: HistoryArg = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self.store = view_store(db)
        self.runs: list[dict[str, Any]] = []
        self.brushed_ids: list[int] | None = None  # runs kept by the parallel chart's brushes
        self._drawing_parallel = False
        self._series: list[Series] = []

        self.run_filter = QLineEdit()
        self.run_filter.setObjectName("compareRunFilter")
        self.run_filter.setPlaceholderText("Filter runs…")
        self.run_filter.setClearButtonEnabled(True)
        self.run_filter.textChanged.connect(self._filter_list)
        self.run_list = QListWidget()
        self.run_list.setObjectName("compareRunList")
        self.run_list.setToolTip("Tick two or more runs to compare them")
        self.run_list.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.run_list.itemChanged.connect(self._list_changed)
        refresh = QPushButton("Refresh")
        refresh.setObjectName("compareRefresh")
        refresh.setToolTip("Read the list of runs again")
        refresh.clicked.connect(self.reload_run_list)
        clear = QPushButton("Clear")
        clear.setObjectName("compareClear")
        clear.setToolTip("Untick every run")
        clear.clicked.connect(lambda: self.set_runs([]))
        list_buttons = QHBoxLayout()
        list_buttons.addWidget(refresh)
        list_buttons.addWidget(clear)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel("<b>Runs</b>"))
        left_layout.addWidget(self.run_filter)
        left_layout.addWidget(self.run_list, 1)
        left_layout.addLayout(list_buttons)

        self.metric_box = QComboBox()
        self.metric_box.setObjectName("compareMetric")
        self.metric_box.setToolTip("The metric drawn for every run")
        self.metric_box.setMinimumContentsLength(9)
        self.metric_box.setSizeAdjustPolicy(  # long metric names must not widen the window
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.phase = QComboBox()
        self.phase.setObjectName("comparePhase")
        self.phase.setMinimumContentsLength(8)
        self.phase.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.phase.setToolTip("Which model's curve: the teacher, the student alone (baseline), "
                              "the distilled student, or all three end to end")
        for name, text in (("student", "student + KD"), ("baseline", "student alone"),
                           ("teacher", "teacher"), ("all", "all phases")):
            self.phase.addItem(text, name)
        self.x_axis = QComboBox()
        self.x_axis.setObjectName("compareX")
        self.x_axis.setToolTip("x axis: optimiser step of the phase, epoch (fractional for "
                               "per-step metrics) or seconds since the run started")
        for mode in X_MODES:
            self.x_axis.addItem(mode, mode)
        self.smoothing = QSlider(Qt.Orientation.Horizontal)
        self.smoothing.setObjectName("compareSmoothing")
        self.smoothing.setRange(0, 99)
        self.smoothing.setFixedWidth(110)
        self.smoothing.setToolTip("Smoothing weight w of a debiased exponential moving "
                                  "average: s_t = w·s_(t-1) + (1-w)·v_t, shown as "
                                  "s_t / (1 - w^t)")
        self.smoothing_label = QLabel("0.00")
        self.log_y = QCheckBox("Log y")
        self.log_y.setObjectName("compareLogY")
        self.log_y.setToolTip("Logarithmic y axis")
        self.group_seeds = QCheckBox("Group seeds")
        self.group_seeds.setObjectName("compareGroupSeeds")
        self.group_seeds.setToolTip("Runs whose configs differ only in seed (and name) are "
                                    "drawn as one mean curve with a ± std band, and summarised "
                                    "as mean ± std")
        controls = QHBoxLayout()
        for text, widget in (("Metric", self.metric_box), ("Phase", self.phase),
                             ("x", self.x_axis), ("Smoothing", self.smoothing)):
            controls.addWidget(QLabel(text))
            controls.addWidget(widget)
        controls.addWidget(self.smoothing_label)
        controls.addWidget(self.log_y)
        controls.addWidget(self.group_seeds)
        controls.addStretch(1)

        self.overlay = CurveOverlay()
        self.plot = self.overlay.plot
        self.curve_panel = CurvePanel(self.overlay)
        self.pareto_panel = ParetoPanel()
        self.size_axis = self.pareto_panel.size_axis
        self.pareto_note = self.pareto_panel.note
        self.summary = SummaryTable()
        self.diff_panel = DiffPanel()
        self.diff, self.diff_only = self.diff_panel.table, self.diff_panel.diff_only
        self.tables = QTabWidget()
        self.tables.setObjectName("compareTables")
        self.tables.addTab(self.summary, "Summary")
        self.tables.addTab(self.diff_panel, "Config differences")

        curves = QSplitter(Qt.Orientation.Horizontal)
        curves.addWidget(self.curve_panel)
        curves.addWidget(self.pareto_panel)
        curves.setStretchFactor(0, 3)
        curves.setStretchFactor(1, 2)
        self.parallel = ParallelPanel()
        self.parallel.selection_changed.connect(self._brushed)
        self.parallel.metric_changed.connect(lambda _metric: self.draw_parallel())
        charts = QTabWidget()
        charts.setObjectName("compareCharts")
        charts.addTab(curves, "Curves and Pareto")
        charts.addTab(self.parallel, "Parallel coordinates")
        charts.setTabToolTip(1, "One axis per config key that differs among the runs and the "
                             "metric last; drag along an axis to filter the tables")
        self.charts = charts
        right = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addLayout(controls)
        top_layout.addWidget(charts, 1)
        self.hint = QLabel()
        self.hint.setObjectName("compareHint")
        self.hint.setWordWrap(True)
        top_layout.addWidget(self.hint)
        right.addWidget(top)
        right.addWidget(self.tables)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)
        right.setSizes([560, 280])
        outer = QSplitter(Qt.Orientation.Horizontal)
        outer.setObjectName("compareSplitter")
        outer.addWidget(left)
        outer.addWidget(right)
        outer.setStretchFactor(0, 0)
        outer.setStretchFactor(1, 1)
        outer.setSizes([230, 1000])
        layout = QVBoxLayout(self)
        layout.addWidget(outer)

        self.metric_box.currentIndexChanged.connect(self._controls_changed)
        self.phase.currentIndexChanged.connect(self._controls_changed)
        self.x_axis.currentIndexChanged.connect(lambda _index: self.draw_curves())
        self.smoothing.valueChanged.connect(self._smoothing_changed)
        self.log_y.toggled.connect(self._log_changed)
        self.group_seeds.toggled.connect(self._controls_changed)
        self.size_axis.currentIndexChanged.connect(self.draw_pareto)
        self.reload_run_list()
        self.redraw()

    # ------------------------------------------------------------ choosing runs

    def reload_run_list(self) -> None:
        """List every saved run (newest first) with the current ones ticked."""
        chosen = set(self.run_ids())
        self.run_list.blockSignals(True)
        self.run_list.clear()
        swatch = QPixmap(12, 12)
        for run in self.store.list_runs_brief():
            status = "" if run["status"] == "completed" else f"  [{run['status']}]"
            item = QListWidgetItem(run_label(run) + status)
            item.setToolTip(f"{run['dataset'] or '-'}: {run['teacher_arch'] or '-'} → "
                            f"{run['student_arch'] or '-'}, {run['method'] or '-'}, "
                            f"seed {run['seed']}, {run['status']}")
            item.setData(Qt.ItemDataRole.UserRole, run["id"])
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if run["id"] in chosen
                               else Qt.CheckState.Unchecked)
            swatch.fill(QColor(*run_colour(run["id"])))
            item.setIcon(QIcon(swatch))
            self.run_list.addItem(item)
        self.run_list.blockSignals(False)
        self._filter_list(self.run_filter.text())
        listed = {self.run_list.item(i).data(Qt.ItemDataRole.UserRole)
                  for i in range(self.run_list.count())}
        if any(run_id not in listed for run_id in self.run_ids()):  # deleted meanwhile
            self._load_runs([run_id for run_id in self.run_ids() if run_id in listed])

    def set_runs(self, run_ids: list[int]) -> None:
        """Compare exactly these runs (in this order) and draw everything once."""
        wanted = [int(i) for i in run_ids]
        listed = {self.run_list.item(i).data(Qt.ItemDataRole.UserRole)
                  for i in range(self.run_list.count())}
        if any(i not in listed for i in wanted):
            self.reload_run_list()
        self.run_list.blockSignals(True)
        for i in range(self.run_list.count()):
            item = self.run_list.item(i)
            item.setCheckState(Qt.CheckState.Checked
                               if item.data(Qt.ItemDataRole.UserRole) in wanted
                               else Qt.CheckState.Unchecked)
        self.run_list.blockSignals(False)
        self._load_runs(wanted)

    def run_ids(self) -> list[int]:
        return [run["id"] for run in self.runs]

    def _list_changed(self, _item: QListWidgetItem) -> None:
        ticked = [self.run_list.item(i).data(Qt.ItemDataRole.UserRole)
                  for i in range(self.run_list.count())
                  if self.run_list.item(i).checkState() == Qt.CheckState.Checked]
        order = [i for i in self.run_ids() if i in ticked]
        order += [i for i in sorted(ticked) if i not in order]
        self._load_runs(order)

    def _filter_list(self, text: str) -> None:
        words = text.lower().split()
        for i in range(self.run_list.count()):
            item = self.run_list.item(i)
            item.setHidden(not all(w in item.text().lower() for w in words))

    def _load_runs(self, run_ids: list[int]) -> None:
        self.runs = self.store.runs_by_id(run_ids)
        self.runs_changed.emit(self.run_ids())
        self._fill_metric_names()
        self.redraw()

    def _fill_metric_names(self) -> None:
        current = self.metric_box.currentText()
        names = self.store.metric_names(self.run_ids())
        preferred = [n for n in PREFERRED_METRICS if n in names]
        ordered = preferred + [n for n in names if n not in preferred]
        self.metric_box.blockSignals(True)
        self.metric_box.clear()
        self.metric_box.addItems(ordered)
        if current in ordered:
            self.metric_box.setCurrentText(current)
        self.metric_box.blockSignals(False)

    # ------------------------------------------------------------ drawing

    def redraw(self) -> None:
        self.draw_curves()
        self.draw_parallel(tables=False)
        self.fill_summary()
        self.fill_diff()
        self.draw_pareto()
        if not self.runs:
            self.hint.setText("Tick two or more runs on the left (or use Compare in the "
                              "history) to compare them.")
        elif len(self.runs) == 1:
            self.hint.setText(f"Showing {run_label(self.runs[0])} alone; tick more runs on the "
                              "left to compare.")
        else:
            self.hint.setText("")
        self._update_hint()

    def _controls_changed(self) -> None:
        self.draw_curves()
        self.draw_parallel(tables=False)
        self.fill_summary()
        self.draw_pareto()

    def _smoothing_changed(self, value: int) -> None:
        self.smoothing_label.setText(f"{value / 100:.2f}")
        self._draw_curves(reuse=True)

    def _log_changed(self, on: bool) -> None:
        self._draw_curves(reuse=True)

    def metric_name(self) -> str:
        return self.metric_box.currentText()

    def phase_name(self) -> str:
        return self.phase.currentData()

    def seed_groups(self, runs: list[dict[str, Any]] | None = None
                    ) -> list[list[dict[str, Any]]]:
        """Groups of runs drawn as one; each run alone unless seed grouping is on."""
        runs = self.runs if runs is None else runs
        if self.group_seeds.isChecked():
            return group_by_seed(runs)
        return [[run] for run in runs]

    def table_runs(self) -> list[dict[str, Any]]:
        """The runs the tables show: those inside the parallel chart's brushes."""
        if self.brushed_ids is None:
            return self.runs
        kept = set(self.brushed_ids)
        return [run for run in self.runs if run["id"] in kept]

    def draw_curves(self) -> None:
        """Overlay the chosen metric of every run (or seed group's mean ± std)."""
        self._draw_curves(reuse=False)

    def _draw_curves(self, reuse: bool) -> None:
        """Draw the curves; with `reuse`, from the rows already read (smoothing changed)."""
        metric = self.metric_name()
        series: list[Series] = []
        if self.runs and metric:
            if not reuse:
                started = {run["id"]: run["created_at"] for run in self.runs}
                rows = self.store.metric_rows(self.run_ids(), metric)
                self._series = build_series(rows, self.x_axis.currentData(),
                                            self.phase_name(), started)
            series = self._series
        self.overlay.draw(self.seed_groups(), series, self.phase_name(),
                          self.smoothing.value() / 100, self.log_y.isChecked())
        self.overlay.set_axes(metric or "", self.x_axis.currentData(), self.log_y.isChecked())

    @property
    def curves(self) -> dict[str, Any]:
        """The drawn curves (PlotDataItems) by legend name."""
        return self.overlay.curves

    @property
    def bands(self) -> list[Any]:
        """The ± std bands of seed groups (FillBetweenItems)."""
        return self.overlay.bands

    def curve_items(self) -> list[Any]:
        return list(self.curves.values())

    # ------------------------------------------------------------ summary and diff

    def _best_last(self, run_id: int) -> tuple[float | None, float | None]:
        metric = self.metric_name()
        phase = self.phase_name()
        wanted = "student" if phase == "all" else phase
        values: list[float] = []
        for series in self._series:
            if series.run_id == run_id and series.phase in (wanted, "all"):
                values = list(series.y)
        if phase == "all":  # the end-to-end curve: take the student's own rows
            rows = self.store.metric_rows([run_id], metric)
            values = [r[4] for r in rows if r[1] == "student"]
        if not values:
            return None, None
        return best_of(metric, values), values[-1]

    def fill_summary(self) -> None:
        self.summary.fill(self.seed_groups(self.table_runs()), self.metric_name() or "-",
                          self.phase_name(), self._best_last,
                          self.store.latest_export_meta(self.run_ids()))

    def fill_diff(self) -> None:
        self.diff_panel.fill(self.table_runs())

    def diff_keys(self) -> list[str]:
        return self.diff_panel.keys()

    # ------------------------------------------------------------ parallel coordinates

    def draw_parallel(self, tables: bool = True) -> None:
        """A line per run (per seed group when grouped) over the keys that differ."""
        metric = self.parallel.metric()
        groups = self.seed_groups()
        keys = varying_keys([group[0]["config"] for group in groups])
        lines = []
        for group in groups:
            lead = group[0]
            flat = flatten(lead["config"])
            values: dict[str, Any] = {key: flat.get(key, MISSING) for key in keys}
            mean, spread, count = mean_std(metric_value(run, metric) for run in group)
            values[metric] = mean if count else MISSING
            label = run_label(lead) + (f" (+{len(group) - 1} seeds)" if len(group) > 1 else "")
            lines.append(Line([run["id"] for run in group], label, values,
                              spread if count > 1 else None))
        self._drawing_parallel = True
        try:
            self.parallel.draw(lines, keys)
        finally:
            self._drawing_parallel = False
        self._brushed(self.parallel.selected_ids(), tables)

    def _brushed(self, run_ids: list[int], tables: bool = True) -> None:
        if self._drawing_parallel:
            return
        kept = None if not self.parallel.brushes else list(run_ids)
        changed = kept != self.brushed_ids
        self.brushed_ids = kept
        if tables and changed:
            self.fill_summary()
            self.fill_diff()
        self._update_hint()

    def _update_hint(self) -> None:
        if self.brushed_ids is not None and self.runs:
            self.hint.setText(f"Tables: {len(self.table_runs())} of {len(self.runs)} runs "
                              "(brushed in the parallel coordinates; Clear brushes shows all)")

    def show_runs(self, run_ids: list[int]) -> None:
        """Compare these runs with the parallel-coordinates chart in front."""
        self.set_runs(run_ids)
        self.charts.setCurrentWidget(self.parallel)

    def show_group(self, group_id: str) -> int:
        """Compare the runs of a sweep or group (runs.group_id) on the parallel-coordinates
        chart; returns how many runs it has."""
        run_ids = self.store.group_run_ids(group_id)
        self.show_runs(run_ids)
        if not run_ids:
            self.hint.setText(f"No run belongs to the group {group_id!r} (yet).")
        return len(run_ids)

    # ------------------------------------------------------------ Pareto scatter

    def draw_pareto(self) -> None:
        """Students, baselines and teachers of the runs: size vs test accuracy."""
        latency = (self.store.latest_export_meta(self.run_ids())
                   if self.pareto_panel.axis() == "latency" else {})
        self.pareto_panel.draw(self.seed_groups(), latency)

    @property
    def pareto_points(self) -> list[dict[str, Any]]:
        return self.pareto_panel.points

    def front_members(self) -> list[tuple[int, str]]:
        return self.pareto_panel.front_members()

    def showEvent(self, event: Any) -> None:  # noqa: N802
        """Pick up runs saved since the list was filled."""
        if self.run_list.count() != self.store.history_signature()[0]:
            self.reload_run_list()
        super().showEvent(event)

