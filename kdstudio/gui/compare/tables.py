"""The compare view's tables: best and last values with test accuracies per run (or seed
group, as mean ± std), and the config differences."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from kdstudio.gui.compare.data import config_diff, mean_and_std
from kdstudio.gui.widgets.colours import run_colour

SUMMARY_HEADERS = ["Run", "Seeds", "Best", "Last", "Student test", "Alone test", "Teacher test",
                   "KD gain", "Student params", "Compression", "Latency (ms)"]
DIFF_HIGHLIGHT = QColor(255, 243, 205)


def run_label(run: dict[str, Any]) -> str:
    return f"#{run['id']} {run['name']}"


def percent(value: float | None, spread: float | None = None) -> str:
    if value is None:
        return "-"
    if spread is not None:
        return f"{value:.2%} ± {spread * 100:.2f}"
    return f"{value:.2%}"


def value_text(metric: str, value: float | None, spread: float | None = None) -> str:
    if value is None:
        return "-"
    if "acc" in metric or "agreement" in metric:
        return percent(value, spread)
    return f"{value:.4g}" + (f" ± {spread:.2g}" if spread is not None else "")


def _signed(scale: float, places: int, sign: str = "") -> Callable[[Any, Any], str]:
    def text(mean: float | None, spread: float | None) -> str:
        if mean is None:
            return "-"
        return (f"{mean * scale:{sign}.{places}f}"
                + (f" ± {spread * scale:.{places}f}" if spread is not None else ""))
    return text


class SummaryTable(QTableWidget):
    """One row per run or seed group: best and last value of the metric, test accuracies,
    KD gain, size and latency."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(SUMMARY_HEADERS), parent)
        self.setObjectName("compareSummary")
        self.setHorizontalHeaderLabels(SUMMARY_HEADERS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setStretchLastSection(True)

    def fill(self, groups: list[list[dict[str, Any]]], metric: str, phase: str,
             best_last: Callable[[int], tuple[float | None, float | None]],
             latency: dict[int, dict[str, Any]]) -> None:
        """`best_last(run_id)`: the best and last value of `metric` in the chosen phase."""
        headers = list(SUMMARY_HEADERS)
        headers[2] = f"Best {metric}"
        headers[3] = f"Last {metric}"
        self.setHorizontalHeaderLabels(headers)
        self.setRowCount(len(groups))
        for row, group in enumerate(groups):
            values = [best_last(run["id"]) for run in group]

            def stat(numbers: list[Any], formatter: Any) -> str:
                mean, spread = mean_and_std(numbers)
                known = sum(v is not None for v in numbers)
                return formatter(mean, spread if known > 1 else None)

            lead = group[0]
            cells = [
                run_label(lead) + (f" (+{len(group) - 1})" if len(group) > 1 else ""),
                ", ".join(str(run["seed"]) for run in group),
                stat([best for best, _ in values], lambda m, s: value_text(metric, m, s)),
                stat([last for _, last in values], lambda m, s: value_text(metric, m, s)),
                stat([r["student_test_acc"] for r in group], percent),
                stat([r["baseline_test_acc"] for r in group], percent),
                stat([r["teacher_test_acc"] for r in group], percent),
                stat([r["kd_gain"] for r in group], _signed(100, 2, "+")),
                f"{lead['student_params']:,}" if lead.get("student_params") else "-",
                f"{lead['compression']:.1f}×" if lead.get("compression") else "-",
                stat([latency.get(r["id"], {}).get("student_latency_ms") for r in group],
                     _signed(1, 3)),
            ]
            for column, text in enumerate(cells):
                self.setItem(row, column, self._cell(text, column, lead["id"]))
        self.resizeColumnsToContents()
        self.setToolTip(f"Best and last {metric} of the "
                        f"{'student' if phase == 'all' else phase} phase; groups "
                        "show mean ± std over seeds")

    @staticmethod
    def _cell(text: str, column: int, run_id: int) -> QTableWidgetItem:
        cell = QTableWidgetItem(text)
        if column == 0:
            cell.setForeground(QBrush(QColor(*run_colour(run_id))))
            font = QFont()
            font.setBold(True)
            cell.setFont(font)
        if column >= 2:
            cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return cell


class DiffPanel(QWidget):
    """The config keys of the runs side by side, only those that differ by default."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[dict[str, Any]] = []
        self.diff_only = QCheckBox("Differences only")
        self.diff_only.setObjectName("compareDiffOnly")
        self.diff_only.setChecked(True)
        self.diff_only.setToolTip("Show only the config keys whose values differ between "
                                  "runs; with all keys shown, those that differ are marked")
        self.diff_only.toggled.connect(lambda _on: self.fill(self.runs))
        self.table = QTableWidget(0, 0)
        self.table.setObjectName("compareConfigDiff")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.diff_only)
        layout.addWidget(self.table, 1)

    def fill(self, runs: list[dict[str, Any]]) -> None:
        self.runs = runs
        only = self.diff_only.isChecked()
        diff = config_diff([run["config"] for run in runs], only)
        table = self.table
        table.clear()
        table.setColumnCount(len(runs))
        table.setRowCount(len(diff.keys))
        table.setHorizontalHeaderLabels([run_label(run) for run in runs])
        table.setVerticalHeaderLabels(diff.keys)
        highlight = QBrush(DIFF_HIGHLIGHT)
        for row, values in enumerate(diff.values):
            for column, text in enumerate(values):
                cell = QTableWidgetItem(text)
                if diff.differs[row] and not only:
                    cell.setBackground(highlight)
                table.setItem(row, column, cell)
        table.resizeColumnsToContents()

    def keys(self) -> list[str]:
        return [self.table.verticalHeaderItem(i).text() for i in range(self.table.rowCount())]
