"""The history view: every saved run in a sortable, filterable table.

Columns are chosen from the default ones, the summary metrics, the run fields and every
config key path (kept in QSettings when the window passes its settings); the filter is
words or an expression (core/run_query.py); Group by shows one row per value of a key with
n and mean ± std. Name, tags and notes are edited in place; runs are deleted (with their
files) after a confirmation; Open, Re-run, Resume, Compare, Export and Export metrics act on
the selection (a selected group stands for its runs). While a run writes, a timer polls a
cheap fingerprint of the runs table and reloads only when it changes; running rows get their
phase and live validation accuracy on each tick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QSettings,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from kdstudio.core.resume import refusal
from kdstudio.core.store import STATUSES
from kdstudio.gui.history.chooser import ColumnChoice, column_menu
from kdstudio.gui.history.columns import counted
from kdstudio.gui.history.groups import RUN_IDS_ROLE, GroupedRuns, GroupModel
from kdstudio.gui.history.model import ID_ROLE, SORT_ROLE, HistoryFilter, HistoryModel
from kdstudio.gui.widgets.elided import ElidedTipDelegate
from kdstudio.gui.widgets.file_dialogs import save_file_name
from kdstudio.gui.widgets.history_store import HistoryArg, view_store

POLL_MS = 1000
EMPTY_HINT = "No runs yet: pick a preset and press Start"
FILTER_TIP = ("Words: every word must appear in the run's name, id, status, dataset, "
              "architectures, method, tags or notes.\n"
              "Expression (any text with < <= > >= == !=): e.g.\n"
              "  kd_gain > 1 and distill.temperature >= 4\n"
              "  (method == \"kd\" or method == \"dkd\") and not seed == 0\n"
              "Names: run columns (kd_gain, student_test_acc, seed, dataset, ...) or config "
              "key paths (distill.temperature, optim.lr). Accuracies and kd_gain in percent "
              "points; text in quotes; a run without the key never matches.")
RESUME_TIP = ("Continue the selected stopped or interrupted run in the workbench from its "
              "last finished epoch, in the same history row")


class HistoryView(ColumnChoice, GroupedRuns, QWidget):
    """Saved runs. Signals carry a run id, a run's config dict or a list of run ids."""

    open_run_requested = Signal(int)
    dark_knowledge_requested = Signal(int)
    rerun_requested = Signal(object)  # the run's config as a dict
    resume_requested = Signal(int)  # a stopped or interrupted run with a checkpoint
    compare_requested = Signal(object)  # list of run ids
    runs_deleted = Signal(object)  # list of run ids

    def __init__(self, db: HistoryArg = None, parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        """`settings`: where the column choice is kept (None: not kept)."""
        super().__init__(parent)
        self.setObjectName("historyView")
        self.settings = settings
        self.store = view_store(db)
        self.db_path = self.store.path
        self._signature: tuple[Any, ...] | None = None
        self._sized = False
        self._user_sized: set[str] = set()
        self.model = HistoryModel(self.store, self)
        self.proxy = HistoryFilter(self)
        self.proxy.setSourceModel(self.model)

        self.search = QLineEdit()
        self.search.setObjectName("historySearch")
        self.search.setClearButtonEnabled(True)
        self.search.setPlaceholderText("Filter: words, or e.g. kd_gain > 1 and "
                                       "distill.temperature >= 4")
        self.search.setToolTip(FILTER_TIP)
        self.search.textChanged.connect(self._apply_filter)
        self.filter_error = QLabel()
        self.filter_error.setObjectName("historyFilterError")
        self.filter_error.setStyleSheet("color: #b01e1e;")
        self.filter_error.setVisible(False)
        self.columns_button = QToolButton()
        self.columns_button.setObjectName("historyColumns")
        self.columns_button.setText("Columns")
        self.columns_button.setToolTip("Choose the table's columns: any summary metric, run "
                                       "field or config key (drag a header to reorder; "
                                       "also on the header's context menu)")
        self.columns_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.column_menu = column_menu(self)
        self.column_menu.aboutToShow.connect(self._fill_column_menu)
        self.columns_button.setMenu(self.column_menu)
        self.group_by = QComboBox()
        self.group_by.setObjectName("historyGroupBy")
        self.group_by.setToolTip("Group the shown runs by one key: a row per value with n and "
                                 "mean ± std of every numeric column")
        self.group_by.setMinimumContentsLength(12)
        self.group_by.currentIndexChanged.connect(self._group_changed)
        self.group_model = GroupModel(self)
        self.group_proxy = QSortFilterProxyModel(self)
        self.group_proxy.setSourceModel(self.group_model)
        self.group_proxy.setSortRole(SORT_ROLE)
        self.status_filter = QComboBox()
        self.status_filter.setObjectName("historyStatus")
        self.status_filter.addItem("All statuses", "")
        for status in STATUSES:
            self.status_filter.addItem(status, status)
        self.status_filter.setToolTip("Show only runs with this status")
        self.status_filter.currentIndexChanged.connect(self._apply_filter)
        self.count_label = QLabel()
        self.count_label.setObjectName("historyCount")

        self.buttons: dict[str, QPushButton] = {}
        bar = QHBoxLayout()
        for key, text, tip, slot in (
            ("Open", "Open", "Show the selected run in the workbench: its curves, phase "
             "bars and summary as they were when it ended", self.open_selected),
            ("Rerun", "Re-run", "Load the selected run's config into the form",
             self.rerun_selected),
            ("Resume", "Resume", RESUME_TIP, self.resume_selected),
            ("Compare", "Compare", "Compare the selected runs (two or more)",
             self.compare_selected),
            ("DarkKnowledge", "Dark knowledge", "What the teacher's soft targets carry and "
             "where KD helped, class by class, for the selected finished run",
             self.dark_knowledge_selected),
            ("Export", "Export student…", "Export the selected run's student: safetensors, "
             "TorchScript, ONNX and a model card", self.export_selected),
            ("ExportMetrics", "Export metrics…", "Write every metric row of the selected "
             "runs to one CSV file", self.export_metrics_selected),
            ("Delete", "Delete…", "Delete the selected runs, their metrics and their files "
             "(asks first)", self.delete_selected),
        ):
            button = QPushButton(text)
            button.setObjectName(f"history{key}")
            button.setToolTip(tip)
            button.clicked.connect(slot)
            self.buttons[key] = button
            bar.addWidget(button)
        bar.addStretch(1)
        filters = QHBoxLayout()
        filters.addWidget(self.search, 1)
        filters.addWidget(self.status_filter)
        filters.addWidget(QLabel("Group by"))
        filters.addWidget(self.group_by)
        filters.addWidget(self.columns_button)
        filters.addWidget(self.count_label)

        self.table = QTableView()
        self.table.setObjectName("historyTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setItemDelegate(ElidedTipDelegate(self.table))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        header.setSectionsMovable(True)
        header.sectionMoved.connect(lambda *_args: self._save_columns())
        header.sectionResized.connect(self._user_resized)
        header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        header.customContextMenuRequested.connect(self._header_menu)
        self._restore_columns()
        self.group_table = QTableView()
        self.group_table.setObjectName("historyGroupTable")
        self.group_table.setModel(self.group_proxy)
        self.group_table.setSortingEnabled(True)
        self.group_table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.group_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.group_table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.group_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.group_table.setAlternatingRowColors(True)
        self.group_table.setWordWrap(False)
        self.group_table.setItemDelegate(ElidedTipDelegate(self.group_table))
        self.group_table.verticalHeader().setVisible(False)
        self.group_table.horizontalHeader().setStretchLastSection(True)
        self.group_table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.tables = QStackedWidget()
        self.tables.addWidget(self.table)
        self.tables.addWidget(self.group_table)
        self.table.doubleClicked.connect(self._double_clicked)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        delete = QAction("Delete", self.table)
        delete.setShortcut(QKeySequence.StandardKey.Delete)
        delete.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        delete.triggered.connect(self.delete_selected)
        self.table.addAction(delete)
        self.model.edit_refused.connect(lambda text: self._say(text, error=True))

        self.empty_hint = QLabel(EMPTY_HINT)
        self.empty_hint.setObjectName("historyEmptyHint")
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setStyleSheet("color: #555; font-size: 13pt; padding: 24px;")
        self.empty_hint.setVisible(False)
        self.message = QLabel()
        self.message.setObjectName("historyMessage")
        self.message.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.filter_error)
        layout.addLayout(bar)
        layout.addWidget(self.empty_hint)
        layout.addWidget(self.tables, 1)
        layout.addWidget(self.message)

        self.timer = QTimer(self)
        self.timer.setObjectName("historyPoll")
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.reload()
        self.timer.start()

    # ------------------------------------------------------------ loading

    def reload(self) -> None:
        """Read every run again, keeping the selection."""
        selected = self.selected_ids()
        self._signature = self.store.history_signature()
        keys_before = list(self.model.config_keys)
        self.model.set_runs(self.store.list_runs_brief())
        if self.model.config_keys != keys_before or not self.group_by.count():
            self._fill_group_keys()
        if self.model.runs:
            self._fit_columns(grow_only=self._sized)
        self._refresh_live()
        self._select_ids(selected)
        self._regroup()
        self._update_count()
        self._update_buttons()

    def poll(self) -> None:
        """Timer tick: reload when runs were added, removed or finished; refresh live rows."""
        try:
            signature = self.store.history_signature()
        except Exception as error:  # noqa: BLE001 - a locked or vanished file must not crash
            self._say(f"Cannot read the history: {error}", error=True)
            return
        if signature != self._signature:
            self.reload()
        elif signature[2]:
            self._refresh_live()

    def _refresh_live(self) -> None:
        for run in self.model.runs:
            if run["status"] == "running":
                self.model.update_live(run["id"], self.store.live_progress(run["id"]))

    # ------------------------------------------------------------ selection

    def selected_ids(self) -> list[int]:
        """The selected runs' ids; in the grouped table, those of every selected group."""
        if self.grouping():
            groups = self.group_table.selectionModel().selectedRows()
            return [run_id for index in sorted(groups, key=lambda i: i.row())
                    for run_id in index.data(RUN_IDS_ROLE)]
        rows = self.table.selectionModel().selectedRows()
        return [index.data(ID_ROLE) for index in sorted(rows, key=lambda i: i.row())]

    def selected_runs(self) -> list[dict[str, Any]]:
        wanted = self.selected_ids()
        by_id = {run["id"]: run for run in self.model.runs}
        return [by_id[i] for i in wanted if i in by_id]

    def select_runs(self, run_ids: list[int]) -> None:
        self.table.clearSelection()
        self._select_ids(run_ids)

    def _select_ids(self, run_ids: list[int]) -> None:
        selection = self.table.selectionModel()
        flags = (QItemSelectionModel.SelectionFlag.Select
                 | QItemSelectionModel.SelectionFlag.Rows)
        for run_id in run_ids:
            row = self.model.row_of(run_id)
            if row >= 0:
                index = self.proxy.mapFromSource(self.model.index(row, 0))
                if index.isValid():
                    selection.select(index, flags)

    def visible_ids(self) -> list[int]:
        """Run ids in the order the table shows them (after filter and sort)."""
        return [self.proxy.index(row, 0).data(ID_ROLE) for row in range(self.proxy.rowCount())]

    def column_of(self, key: str) -> int:
        """The model column of `key` (-1: not shown)."""
        keys = self.model.column_keys()
        return keys.index(key) if key in keys else -1

    # ------------------------------------------------------------ actions

    def open_selected(self) -> None:
        runs = self.selected_runs()
        if len(runs) == 1:
            self.open_run_requested.emit(runs[0]["id"])

    def dark_knowledge_selected(self) -> None:
        runs = self.selected_runs()
        if len(runs) == 1:
            self.dark_knowledge_requested.emit(runs[0]["id"])

    def rerun_selected(self) -> None:
        runs = self.selected_runs()
        if len(runs) != 1:
            return
        run = self.store.get_run(runs[0]["id"])
        if run is None:
            self._say(f"Run {runs[0]['id']} is no longer in the history", error=True)
            return
        self.rerun_requested.emit(dict(run["config"]))
        self._say(f"Config of run {run['id']} ({run['name']}) sent to the form")

    def resume_selected(self) -> None:
        runs = self.selected_runs()
        if len(runs) == 1 and not self.resume_refusal(runs):
            self.resume_requested.emit(runs[0]["id"])

    def resume_refusal(self, runs: list[dict[str, Any]]) -> str:
        """Why Resume does not apply to these selected runs ("" when it does)."""
        if len(runs) != 1:
            return "Select one stopped or interrupted run to resume it"
        return refusal(runs[0], self.store.artifact_dir(runs[0]["id"]))

    def compare_selected(self) -> None:
        ids = self.selected_ids()
        if len(ids) >= 2:
            self.compare_requested.emit(ids)

    def export_selected(self):
        """Open the export dialog for the one selected run; returns the dialog."""
        from kdstudio.gui.history.export import ExportDialog

        runs = self.selected_runs()
        if len(runs) != 1:
            return None
        dialog = ExportDialog(self.db_path, runs[0], self)
        dialog.finished.connect(lambda _code: self.reload())
        dialog.open()
        return dialog

    def export_metrics_selected(self) -> None:
        from kdstudio.core.export import ExportError, export_metrics_csv

        runs = self.selected_runs()
        if not runs:
            return
        suggestion = str(Path.home() / (f"run-{runs[0]['id']}-metrics.csv" if len(runs) == 1
                                        else f"{len(runs)}-runs-metrics.csv"))
        path = save_file_name(self, "Export metrics as CSV", suggestion, "CSV files (*.csv)")
        if not path:
            return
        try:
            count = export_metrics_csv(self.store, [run["id"] for run in runs], path)
        except ExportError as error:
            self._say(f"Metrics not exported: {error}", error=True)
            return
        self._say(f"{counted(count, 'metric row')} of {counted(len(runs), 'run')} "
                  f"written to {path}")

    def delete_selected(self) -> bool:
        """Ask, then delete the selected runs with their metrics and files."""
        runs = self.selected_runs()
        if not runs:
            return False
        running = [run for run in runs if run["status"] == "running"]
        if running:
            self._say(f"Run {running[0]['id']} ({running[0]['name']}) is still running; stop "
                      "it before deleting it", error=True)
            return False
        names = ", ".join(f"{run['id']} ({run['name']})" for run in runs[:5])
        more = f" and {len(runs) - 5} more" if len(runs) > 5 else ""
        answer = QMessageBox.question(
            self, "Delete runs",
            f"Delete {counted(len(runs), 'run')}: {names}{more}?\n\nTheir metrics and saved models "
            f"under {self.store.artifact_dir(0).parent} are removed for good. Exported copies "
            "in folders you chose are kept.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return False
        ids = [run["id"] for run in runs]
        for run_id in ids:
            self.store.delete_run(run_id)
        self.reload()
        self._say(f"Deleted {counted(len(ids), 'run')}")
        self.runs_deleted.emit(ids)
        return True

    # ------------------------------------------------------------ small slots

    def _apply_filter(self) -> None:
        error = self.proxy.set_filter(self.search.text(), self.status_filter.currentData() or "")
        self.filter_error.setText(f"Filter: {error}" if error else "")
        self.filter_error.setVisible(bool(error))
        self._regroup()
        self._update_count()
        self._update_buttons()

    def _update_count(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        text = counted(total, "run") if shown == total else f"{shown:,} of {counted(total, 'run')}"
        if self.grouping():
            text += f" in {counted(self.group_model.rowCount(), 'group')}"
        self.count_label.setText(text)
        self.empty_hint.setVisible(total == 0)

    def _update_buttons(self) -> None:
        runs = self.selected_runs()
        one = len(runs) == 1
        self.buttons["Open"].setEnabled(one)
        self.buttons["Rerun"].setEnabled(one)
        why_not = self.resume_refusal(runs)
        self.buttons["Resume"].setEnabled(not why_not)
        self.buttons["Resume"].setToolTip(RESUME_TIP if not why_not else
                                          f"{RESUME_TIP}.\nNot now: {why_not}")
        self.buttons["Export"].setEnabled(one and runs[0]["status"] != "running")
        self.buttons["Compare"].setEnabled(len(runs) >= 2)
        self.buttons["DarkKnowledge"].setEnabled(one and runs[0]["status"] != "running")
        self.buttons["ExportMetrics"].setEnabled(bool(runs))
        self.buttons["Delete"].setEnabled(bool(runs))

    def _double_clicked(self, index: QModelIndex) -> None:
        if not self.model.columns[index.column()].editable:
            self.open_run_requested.emit(index.data(ID_ROLE))

    def _context_menu(self, position: Any) -> None:
        menu = QMenu(self)
        for key in ("Open", "Rerun", "Resume", "Compare", "DarkKnowledge", "Export",
                    "ExportMetrics", "Delete"):
            button = self.buttons[key]
            action = menu.addAction(button.text())
            action.setEnabled(button.isEnabled())
            action.triggered.connect(button.click)
        menu.exec(self.table.viewport().mapToGlobal(position))

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #b01e1e;" if error else "")
        self.message.setText(text)

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        self.timer.stop()
        super().closeEvent(event)
