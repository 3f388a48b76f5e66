"""The compare view: two or more runs side by side.

Curves of any metric overlaid (a stable colour per run, debiased-EMA smoothing, log-y,
x = step, epoch or wall time); a summary table of best and last values and test
accuracies; a Pareto scatter of student size (parameters, MB or measured latency) against
test accuracy with teachers marked; a config diff with a "differences only" switch. Runs
whose configs differ only in seed can be grouped and drawn as mean ± std.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QPixmap
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
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from kdstudio.core.store import Store
from kdstudio.gui.compare.data import (
    X_MODES,
    Series,
    best_of,
    build_series,
    config_diff,
    group_by_seed,
    mean_and_std,
    mean_std,
    pareto_front,
    run_colour,
)
from kdstudio.gui.widgets.smoothing import debiased_ema

SIZE_AXES = {"parameters": "Parameters", "MB": "Size (MB)",
             "latency": "CPU latency per batch (ms, measured at export)"}
PREFERRED_METRICS = ("val/acc", "val/loss", "loss/total", "val/agreement", "train/acc")
SUMMARY_HEADERS = ["Run", "Seeds", "Best", "Last", "Student test", "Alone test", "Teacher test",
                   "KD gain", "Student params", "Compression", "Latency (ms)"]


def _label(run: dict[str, Any]) -> str:
    return f"#{run['id']} {run['name']}"


def _pct(value: float | None, spread: float | None = None) -> str:
    if value is None:
        return "-"
    if spread is not None:
        return f"{value:.2%} ± {spread * 100:.2f}"
    return f"{value:.2%}"


def _value_text(metric: str, value: float | None, spread: float | None = None) -> str:
    if value is None:
        return "-"
    if "acc" in metric or "agreement" in metric:
        return _pct(value, spread)
    return f"{value:.4g}" + (f" ± {spread:.2g}" if spread is not None else "")


class CompareView(QWidget):
    """Compare saved runs; `set_runs(ids)` picks them, so does ticking them in the list."""

    runs_changed = Signal(object)  # list of run ids

    def __init__(self, db: str | Path | Store | None = None,
                 parent: QWidget | None = None) -> None:
        """`db`: the GUI thread's Store to share, or the path of a history file to open."""
        super().__init__(parent)
        self.setObjectName("compareView")
        self.store = db if isinstance(db, Store) else Store(db)
        self.runs: list[dict[str, Any]] = []
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.bands: list[pg.FillBetweenItem] = []
        self._band_items: list[Any] = []
        self._pool: list[pg.PlotDataItem] = []
        self.pareto_points: list[dict[str, Any]] = []
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
        self.metric_box.setMinimumContentsLength(14)
        self.phase = QComboBox()
        self.phase.setObjectName("comparePhase")
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

        self.plot = pg.PlotWidget()
        self.plot.setObjectName("compareCurves")
        self.plot.setBackground("w")
        item = self.plot.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.25)
        item.setClipToView(True)
        item.setDownsampling(auto=True, mode="peak")
        item.getAxis("left").enableAutoSIPrefix(False)
        self.legend = item.addLegend(offset=(-8, -8), labelTextSize="9pt",
                                     labelTextColor=(30, 30, 30))
        self.legend.setBrush(pg.mkBrush(255, 255, 255, 210))

        self.size_axis = QComboBox()
        self.size_axis.setObjectName("compareSizeAxis")
        self.size_axis.setToolTip("Size shown on the Pareto x axis; latency only for runs "
                                  "whose student was exported (that measures it)")
        for key in SIZE_AXES:
            self.size_axis.addItem(key, key)
        self.pareto = pg.PlotWidget()
        self.pareto.setObjectName("comparePareto")
        self.pareto.setBackground("w")
        pareto_item = self.pareto.getPlotItem()
        pareto_item.showGrid(x=True, y=True, alpha=0.25)
        pareto_item.setLabel("left", "Test accuracy (%)")
        pareto_item.setLogMode(x=True, y=False)
        self.pareto_legend = pareto_item.addLegend(offset=(-8, -8), labelTextSize="9pt",
                                                   labelTextColor=(30, 30, 30))
        self.pareto_legend.setBrush(pg.mkBrush(255, 255, 255, 210))
        for name, symbol, filled in (("student + KD", "o", True), ("student alone", "o", False),
                                     ("teacher", "star", True)):
            sample = pg.ScatterPlotItem(symbol=symbol, size=10, pen=pg.mkPen(90, 90, 90),
                                        brush=pg.mkBrush(90, 90, 90) if filled
                                        else pg.mkBrush(255, 255, 255))
            self.pareto_legend.addItem(sample, name)
        self.pareto_note = QLabel()
        self.pareto_note.setObjectName("compareParetoNote")
        self.pareto_note.setWordWrap(True)
        pareto_box = QWidget()
        pareto_layout = QVBoxLayout(pareto_box)
        pareto_layout.setContentsMargins(0, 0, 0, 0)
        pareto_top = QHBoxLayout()
        pareto_top.addWidget(QLabel("<b>Size vs test accuracy</b>  x:"))
        pareto_top.addWidget(self.size_axis)
        pareto_top.addStretch(1)
        pareto_layout.addLayout(pareto_top)
        pareto_layout.addWidget(self.pareto, 1)
        pareto_layout.addWidget(self.pareto_note)

        self.summary = QTableWidget(0, len(SUMMARY_HEADERS))
        self.summary.setObjectName("compareSummary")
        self.summary.setHorizontalHeaderLabels(SUMMARY_HEADERS)
        self.summary.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.summary.verticalHeader().setVisible(False)
        self.summary.horizontalHeader().setStretchLastSection(True)
        self.diff_only = QCheckBox("Differences only")
        self.diff_only.setObjectName("compareDiffOnly")
        self.diff_only.setChecked(True)
        self.diff_only.setToolTip("Show only the config keys whose values differ between "
                                  "runs; with all keys shown, those that differ are marked")
        self.diff = QTableWidget(0, 0)
        self.diff.setObjectName("compareConfigDiff")
        self.diff.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.diff.horizontalHeader().setStretchLastSection(True)
        diff_box = QWidget()
        diff_layout = QVBoxLayout(diff_box)
        diff_layout.setContentsMargins(0, 0, 0, 0)
        diff_layout.addWidget(self.diff_only)
        diff_layout.addWidget(self.diff, 1)
        self.tables = QTabWidget()
        self.tables.setObjectName("compareTables")
        self.tables.addTab(self.summary, "Summary")
        self.tables.addTab(diff_box, "Config differences")

        charts = QSplitter(Qt.Orientation.Horizontal)
        charts.addWidget(self.plot)
        charts.addWidget(pareto_box)
        charts.setStretchFactor(0, 3)
        charts.setStretchFactor(1, 2)
        right = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addLayout(controls)
        top_layout.addWidget(charts, 1)
        self.hint = QLabel()
        self.hint.setObjectName("compareHint")
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
        self.diff_only.toggled.connect(self.fill_diff)
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
            item = QListWidgetItem(_label(run) + status)
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
        self.fill_summary()
        self.fill_diff()
        self.draw_pareto()
        if not self.runs:
            self.hint.setText("Tick two or more runs on the left (or use Compare in the "
                              "history) to compare them.")
        elif len(self.runs) == 1:
            self.hint.setText(f"Showing {_label(self.runs[0])} alone; tick more runs on the "
                              "left to compare.")
        else:
            self.hint.setText("")

    def _controls_changed(self) -> None:
        self.draw_curves()
        self.fill_summary()
        self.draw_pareto()

    def _smoothing_changed(self, value: int) -> None:
        self.smoothing_label.setText(f"{value / 100:.2f}")
        self._draw_curves(reuse=True)

    def _log_changed(self, on: bool) -> None:
        self.plot.getPlotItem().setLogMode(x=False, y=on)

    def metric_name(self) -> str:
        return self.metric_box.currentText()

    def phase_name(self) -> str:
        return self.phase.currentData()

    def seed_groups(self) -> list[list[dict[str, Any]]]:
        """Groups of runs drawn as one; each run alone unless seed grouping is on."""
        if self.group_seeds.isChecked():
            return group_by_seed(self.runs)
        return [[run] for run in self.runs]

    def draw_curves(self) -> None:
        """Overlay the chosen metric of every run (or seed group's mean ± std)."""
        self._draw_curves(reuse=False)

    def _draw_curves(self, reuse: bool) -> None:
        """Draw the curves; with `reuse`, from the rows already read (smoothing changed).

        Curve items are pooled and updated with setData: creating and adding pyqtgraph
        items (and legend rows) costs more than drawing them."""
        plot = self.plot.getPlotItem()
        for item in self._band_items:
            plot.removeItem(item)
        self._band_items.clear()
        self.bands.clear()
        self.curves.clear()
        metric = self.metric_name()
        if self.runs and metric:
            if not reuse:
                started = {run["id"]: run["created_at"] for run in self.runs}
                rows = self.store.metric_rows(self.run_ids(), metric)
                self._series = build_series(rows, self.x_axis.currentData(),
                                            self.phase_name(), started)
            self._draw_series(self.smoothing.value() / 100)
        for item in self._pool[len(self.curves):]:
            item.setData([], [])
            item.hide()
        self._sync_legend()
        plot.setLabel("left", metric or "")
        plot.setLabel("bottom", {"step": "step", "epoch": "epoch",
                                 "wall time": "seconds since the run started"}[
                                     self.x_axis.currentData()])
        plot.setLogMode(x=False, y=self.log_y.isChecked())

    def _draw_series(self, weight: float) -> None:
        by_run: dict[int, list[Series]] = {}
        for series in self._series:
            by_run.setdefault(series.run_id, []).append(series)
        styles = {"teacher": Qt.PenStyle.DashLine, "baseline": Qt.PenStyle.DotLine}
        for group in self.seed_groups():
            lead = group[0]
            colour = run_colour(lead["id"])
            if len(group) > 1:
                members = [s for run in group for s in by_run.get(run["id"], [])]
                for phase in dict.fromkeys(s.phase for s in members):
                    x, mean, std = mean_std([s for s in members if s.phase == phase])
                    mean = np.asarray(debiased_ema(mean, weight)) if weight else mean
                    name = f"{_label(lead)} ×{len(group)} seeds"
                    name += "" if phase in ("all", self.phase_name()) else f" · {phase}"
                    self._add_band(x, mean, std, colour)
                    self._add_curve(name, x, mean, colour, styles.get(phase))
                continue
            for series in by_run.get(lead["id"], []):
                y = np.asarray(debiased_ema(series.y, weight)) if weight else series.y
                name = _label(lead)
                if series.phase not in ("all", self.phase_name()):
                    name += f" · {series.phase}"
                self._add_curve(name, series.x, y, colour, styles.get(series.phase))

    def _add_curve(self, name: str, x: np.ndarray, y: np.ndarray,
                   colour: tuple[int, int, int], style: Qt.PenStyle | None) -> None:
        pen = pg.mkPen(colour, width=2, style=style or Qt.PenStyle.SolidLine)
        key = name
        suffix = 2
        while key in self.curves:
            key = f"{name} ({suffix})"
            suffix += 1
        index = len(self.curves)
        if index == len(self._pool):
            item = pg.PlotDataItem()
            self.plot.getPlotItem().addItem(item)
            self._pool.append(item)
        item = self._pool[index]
        item.setData(x, y, pen=pen, name=key)
        item.show()
        self.curves[key] = item

    def _sync_legend(self) -> None:
        """One legend row per drawn curve; rows are relabelled rather than rebuilt."""
        names = list(self.curves)
        items = list(self.curves.values())
        if [sample.item for sample, _ in self.legend.items] != items:
            self.legend.clear()
            for item, name in zip(items, names, strict=True):
                self.legend.addItem(item, name)
            return
        for (sample, label), name in zip(self.legend.items, names, strict=True):
            if label.text != name:
                label.setText(name)
            sample.update()

    def _add_band(self, x: np.ndarray, mean: np.ndarray, std: np.ndarray,
                  colour: tuple[int, int, int]) -> None:
        upper = pg.PlotDataItem(x, mean + std, pen=pg.mkPen(None))
        lower = pg.PlotDataItem(x, mean - std, pen=pg.mkPen(None))
        band = pg.FillBetweenItem(upper, lower, brush=pg.mkBrush(*colour, 50))
        plot = self.plot.getPlotItem()
        for item in (upper, lower, band):
            plot.addItem(item)
            self._band_items.append(item)
        self.bands.append(band)

    def curve_items(self) -> list[pg.PlotDataItem]:
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
        metric = self.metric_name() or "-"
        phase = self.phase_name()
        headers = list(SUMMARY_HEADERS)
        headers[2] = f"Best {metric}"
        headers[3] = f"Last {metric}"
        self.summary.setHorizontalHeaderLabels(headers)
        latency = self.store.latest_export_meta(self.run_ids())
        groups = self.seed_groups()
        self.summary.setRowCount(len(groups))
        for row, group in enumerate(groups):
            best_last = [self._best_last(run["id"]) for run in group]
            many = len(group) > 1

            def stat(values: list[Any], formatter: Any) -> str:
                mean, spread = mean_and_std(values)
                known = sum(v is not None for v in values)
                return formatter(mean, spread if known > 1 else None)

            lead = group[0]
            cells = [
                _label(lead) + (f" (+{len(group) - 1})" if many else ""),
                ", ".join(str(run["seed"]) for run in group),
                stat([b for b, _ in best_last], lambda m, s: _value_text(metric, m, s)),
                stat([last for _, last in best_last], lambda m, s: _value_text(metric, m, s)),
                stat([r["student_test_acc"] for r in group], _pct),
                stat([r["baseline_test_acc"] for r in group], _pct),
                stat([r["teacher_test_acc"] for r in group], _pct),
                stat([r["kd_gain"] for r in group],
                     lambda m, s: "-" if m is None else f"{m * 100:+.2f}"
                     + (f" ± {s * 100:.2f}" if s is not None else "")),
                f"{lead['student_params']:,}" if lead.get("student_params") else "-",
                f"{lead['compression']:.1f}×" if lead.get("compression") else "-",
                stat([latency.get(r["id"], {}).get("student_latency_ms") for r in group],
                     lambda m, s: "-" if m is None else f"{m:.3f}"
                     + (f" ± {s:.3f}" if s is not None else "")),
            ]
            for column, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                if column == 0:
                    cell.setForeground(QBrush(QColor(*run_colour(lead["id"]))))
                    font = QFont()
                    font.setBold(True)
                    cell.setFont(font)
                if column >= 2:
                    cell.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                self.summary.setItem(row, column, cell)
        self.summary.resizeColumnsToContents()
        self.summary.setToolTip(f"Best and last {metric} of the "
                                f"{'student' if phase == 'all' else phase} phase; groups "
                                "show mean ± std over seeds")

    def fill_diff(self) -> None:
        diff = config_diff([run["config"] for run in self.runs], self.diff_only.isChecked())
        self.diff.clear()
        self.diff.setColumnCount(len(self.runs))
        self.diff.setRowCount(len(diff.keys))
        self.diff.setHorizontalHeaderLabels([_label(run) for run in self.runs])
        self.diff.setVerticalHeaderLabels(diff.keys)
        highlight = QBrush(QColor(255, 243, 205))
        for row, values in enumerate(diff.values):
            for column, text in enumerate(values):
                cell = QTableWidgetItem(text)
                if diff.differs[row] and not self.diff_only.isChecked():
                    cell.setBackground(highlight)
                self.diff.setItem(row, column, cell)
        self.diff.resizeColumnsToContents()

    def diff_keys(self) -> list[str]:
        return [self.diff.verticalHeaderItem(i).text() for i in range(self.diff.rowCount())]

    # ------------------------------------------------------------ Pareto scatter

    def _size(self, run: dict[str, Any], who: str, axis: str,
              latency: dict[int, dict[str, Any]]) -> float | None:
        if axis == "parameters":
            value = run.get(f"{who}_params")
        elif axis == "MB":
            value = run.get(f"{who}_size_mb")
        else:
            value = latency.get(run["id"], {}).get(f"{who}_latency_ms")
        return float(value) if isinstance(value, (int, float)) and value > 0 else None

    def draw_pareto(self) -> None:
        """Students (circles), baselines (hollow) and teachers (stars): size vs test acc."""
        plot = self.pareto.getPlotItem()
        plot.clear()
        self.pareto_points = []
        axis = self.size_axis.currentData()
        plot.setLabel("bottom", SIZE_AXES[axis])
        latency = self.store.latest_export_meta(self.run_ids()) if axis == "latency" else {}
        missing = 0
        spots: list[dict[str, Any]] = []
        for group in self.seed_groups():
            lead = group[0]
            colour = run_colour(lead["id"])
            for who, symbol, filled in (("student", "o", True), ("baseline", "o", False),
                                        ("teacher", "star", True)):
                size_key = "teacher" if who == "teacher" else "student"
                sizes = [self._size(r, size_key, axis, latency) for r in group]
                accs = [r.get(f"{who}_test_acc") for r in group]
                pairs = [(s, a) for s, a in zip(sizes, accs, strict=True)
                         if s is not None and a is not None]
                if not pairs:
                    if who == "student" and any(a is not None for a in accs):
                        missing += 1
                    continue
                x = float(np.mean([p[0] for p in pairs]))
                y, spread = mean_and_std([p[1] for p in pairs])
                self.pareto_points.append({"run_id": lead["id"], "who": who, "x": x,
                                           "y": y, "std": spread, "runs": len(pairs)})
                text = f"{_label(lead)} · {who}: {y:.2%} test, {x:,.4g} {axis}"
                if len(pairs) > 1:
                    text += f" (mean of {len(pairs)} seeds, ± {spread * 100:.2f} points)"
                spots.append({"pos": (np.log10(x), y * 100), "symbol": symbol,
                              "size": 16 if who == "teacher" else 11,
                              "pen": pg.mkPen(colour, width=2), "data": text,
                              "brush": pg.mkBrush(*colour) if filled
                              else pg.mkBrush(255, 255, 255)})
                if len(pairs) > 1 and spread:
                    plot.addItem(pg.ErrorBarItem(x=np.array([np.log10(x)]),
                                                 y=np.array([y * 100]),
                                                 height=np.array([2 * spread * 100]),
                                                 pen=pg.mkPen(colour)))
                if who == "student":
                    label = pg.TextItem(f"#{lead['id']}", color=colour, anchor=(-0.2, 1.1))
                    label.setPos(np.log10(x), y * 100)
                    plot.addItem(label)
        # ScatterPlotItem is not log-aware: its positions are given as log10(size) already.
        plot.addItem(pg.ScatterPlotItem(spots=spots, hoverable=True,
                                        tip=lambda x, y, data: data))
        self._draw_front(plot)
        notes = []
        if missing and axis == "latency":
            notes.append(f"{missing} run(s) have no measured latency: export their student "
                         "to time it.")
        elif missing:
            notes.append(f"{missing} run(s) lack a size for this axis.")
        notes.append("Dashed line: Pareto front (no other model is both smaller and more "
                     "accurate).")
        self.pareto_note.setText(" ".join(notes))

    def _draw_front(self, plot: pg.PlotItem) -> None:
        points = [(p["x"], p["y"]) for p in self.pareto_points]
        if len(points) < 2:
            return
        front = pareto_front(points)
        xs = [points[i][0] for i in front]  # raw sizes: a PlotDataItem takes the log itself
        ys = [points[i][1] * 100 for i in front]
        line = pg.PlotDataItem(xs, ys, pen=pg.mkPen((110, 110, 110), width=1,
                                                    style=Qt.PenStyle.DashLine))
        line.setZValue(-1)
        plot.addItem(line)

    def front_members(self) -> list[tuple[int, str]]:
        points = [(p["x"], p["y"]) for p in self.pareto_points]
        return [(self.pareto_points[i]["run_id"], self.pareto_points[i]["who"])
                for i in pareto_front(points)]

    def showEvent(self, event: Any) -> None:  # noqa: N802
        """Pick up runs saved since the list was filled."""
        if self.run_list.count() != self.store.history_signature()[0]:
            self.reload_run_list()
        super().showEvent(event)

