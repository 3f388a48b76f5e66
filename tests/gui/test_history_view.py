"""History view: runs created through the store, filter, sort, in-place edits, delete with
files, live updates while a run writes, Open / Re-run signals, metrics and student export."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QMessageBox

from kdstudio.core.engine import run as engine_run
from kdstudio.core.store import Store
from kdstudio.gui.history.model import COLUMNS
from kdstudio.gui.history.view import HistoryView
from tests.helpers import tiny_config


def config(name: str, seed: int = 0, dataset: str = "digits", student: str = "mlp",
           temperature: float = 4.0) -> dict:
    return {"name": name, "seed": seed,
            "data": {"dataset": dataset, "batch_size": 64},
            "teacher": {"arch": "cnn", "params": {"channels": [8]}},
            "student": {"arch": student, "params": {"hidden_sizes": [16]}},
            "distill": {"method": "kd", "temperature": temperature, "ce_weight": 0.5,
                        "kd_weight": 0.5, "feature_weight": 0.0}}


def add_finished(store: Store, name: str, student_acc: float | None, baseline_acc: float,
                 status: str = "completed", **kw) -> int:
    run_id = store.create_run(config(name, **kw), teacher_params=12_000, student_params=1_000,
                              compression=12.0)
    for epoch, acc in enumerate((0.5, 0.7, 0.8), start=1):
        store.add_metrics(run_id, "student", epoch * 10, epoch, {"val/acc": acc})
    fields = {"baseline_test_acc": baseline_acc, "teacher_test_acc": 0.95, "duration_s": 75.0,
              "student_best_val_acc": 0.8, "student_last_val_acc": 0.8}
    if student_acc is not None:
        fields |= {"student_test_acc": student_acc, "kd_gain": student_acc - baseline_acc}
    store.finish_run(run_id, status, None if status == "completed" else "boom", **fields)
    return run_id


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "history.db"
    with Store(path) as store:
        add_finished(store, "alpha", 0.91, 0.88)
        add_finished(store, "beta", 0.86, 0.87, student="resnet")
        add_finished(store, "gamma", None, 0.80, status="failed", dataset="mnist1d")
        add_finished(store, "delta", 0.93, 0.90, temperature=2.0)
        store.update_run(1, tags=["keep", "T4"], notes="first try")
    return path


@pytest.fixture
def view(qtbot, db: Path) -> HistoryView:
    widget = HistoryView(db)
    qtbot.addWidget(widget)
    widget.resize(1300, 400)
    widget.show()
    return widget


def cell(view: HistoryView, run_id: int, key: str) -> str:
    column = [c.key for c in COLUMNS].index(key)
    row = view.visible_ids().index(run_id)
    return view.proxy.index(row, column).data()


def test_lists_runs_created_through_the_store(view: HistoryView) -> None:
    assert view.visible_ids() == [4, 3, 2, 1]  # newest first
    assert view.count_label.text() == "4 runs"
    assert cell(view, 1, "name") == "alpha"
    assert cell(view, 1, "student_test_acc") == "91.00%"
    assert cell(view, 1, "baseline_test_acc") == "88.00%"
    assert cell(view, 1, "kd_gain") == "+3.00"
    assert cell(view, 2, "kd_gain") == "-1.00"
    assert cell(view, 1, "compression") == "12.0×"
    assert cell(view, 1, "models") == "cnn → mlp"
    assert cell(view, 1, "weights") == "ce 0.5 · kd 0.5"
    assert cell(view, 1, "tags") == "keep, T4"
    assert cell(view, 1, "duration_s") == "1:15"
    assert cell(view, 3, "status") == "failed"
    assert cell(view, 3, "student_test_acc") == "-"


def test_free_text_and_status_filters(view: HistoryView) -> None:
    view.search.setText("resnet")
    assert view.visible_ids() == [2]
    view.search.setText("KEEP first")  # every word, any field, any case
    assert view.visible_ids() == [1]
    assert view.count_label.text() == "1 of 4 runs"
    view.search.setText("mnist1d")
    assert view.visible_ids() == [3]
    view.search.clear()
    view.status_filter.setCurrentIndex(view.status_filter.findData("failed"))
    assert view.visible_ids() == [3]
    view.status_filter.setCurrentIndex(view.status_filter.findData("completed"))
    assert view.visible_ids() == [4, 2, 1]
    view.search.setText("nothing-matches-this")
    assert view.visible_ids() == []


def test_sort_by_clicking_any_column(qtbot, view: HistoryView) -> None:
    header = view.table.horizontalHeader()
    column = view.column_of("student_test_acc")
    view.table.sortByColumn(column, Qt.SortOrder.DescendingOrder)
    assert view.visible_ids() == [4, 1, 2, 3]  # 93 %, 91 %, 86 %, then no value
    view.table.sortByColumn(column, Qt.SortOrder.AscendingOrder)
    assert view.visible_ids() == [3, 2, 1, 4]
    name_x = header.sectionViewportPosition(view.column_of("name")) + 5
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(name_x, 5))
    assert view.model.sort_column == view.column_of("name")
    assert header.sortIndicatorSection() == view.column_of("name")
    names = [cell(view, i, "name") for i in view.visible_ids()]
    assert names in (sorted(names), sorted(names, reverse=True))
    view.table.sortByColumn(view.column_of("kd_gain"), Qt.SortOrder.DescendingOrder)
    ids = view.visible_ids()
    assert set(ids[:2]) == {1, 4} and ids[2] == 2  # +3.00 twice, then -1.00


def test_edit_name_tags_and_notes_in_place(view: HistoryView, db: Path) -> None:
    row = view.visible_ids().index(2)
    assert view.proxy.setData(view.proxy.index(row, view.column_of("name")), "  renamed  ")
    assert view.proxy.setData(view.proxy.index(row, view.column_of("tags")), "a, b,, a")
    assert view.proxy.setData(view.proxy.index(row, view.column_of("notes")), "line 1\nline 2")
    assert not view.proxy.setData(view.proxy.index(row, view.column_of("name")), "   ")
    assert "needs a name" in view.message.text()
    assert not view.proxy.flags(view.proxy.index(row, view.column_of("status"))) \
        & Qt.ItemFlag.ItemIsEditable
    with Store(db) as store:
        saved = store.get_run(2)
    assert (saved["name"], saved["tags"], saved["notes"]) == ("renamed", ["a", "b"],
                                                              "line 1\nline 2")
    view.search.setText("renamed")
    assert view.visible_ids() == [2]


def test_delete_asks_then_removes_rows_metrics_and_files(view: HistoryView, db: Path,
                                                         monkeypatch) -> None:
    with Store(db) as store:
        folder = store.artifact_dir(1)
        folder.mkdir(parents=True)
        weights = folder / "student.safetensors"
        weights.write_bytes(b"0123")
        store.add_artifact(1, "student", weights, "safetensors")
    answers = iter([QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
    asked: list[str] = []

    def question(_parent, _title, text, *_args):
        asked.append(text)
        return next(answers)

    monkeypatch.setattr(QMessageBox, "question", question)
    view.select_runs([1, 3])
    assert not view.delete_selected()  # answered No: nothing happens
    assert view.visible_ids() == [4, 3, 2, 1] and weights.exists()
    assert view.delete_selected()
    assert "Delete 2 runs:" in asked[-1] and "alpha" in asked[-1]
    assert view.visible_ids() == [4, 2]
    assert not folder.exists()
    with Store(db) as store:
        assert store.get_run(1) is None and store.get_run(3) is None
        assert store.metrics(1) == [] and store.artifacts(1) == []
        assert len(store.list_runs()) == 2


def test_running_run_cannot_be_deleted(view: HistoryView, db: Path, monkeypatch) -> None:
    with Store(db) as store:
        live = store.create_run(config("live"))
    view.poll()
    monkeypatch.setattr(QMessageBox, "question", lambda *a: pytest.fail("must not ask"))
    view.select_runs([live])
    assert not view.delete_selected()
    assert "still running" in view.message.text()


def test_table_follows_a_run_while_it_writes(qtbot, view: HistoryView, db: Path) -> None:
    view.timer.setInterval(100)  # the real poll timer, ticking faster for the test
    writer = Store(db)  # another connection, as the worker thread has
    try:
        live = writer.create_run(config("live"))
        qtbot.waitUntil(lambda: live in view.visible_ids(), timeout=3000)  # the poll timer
        assert cell(view, live, "status") == "running"
        writer.add_metrics(live, "teacher", 5, 1, {"val/acc": 0.6})
        writer.flush()
        view.poll()
        assert cell(view, live, "status") == "running · teacher"
        writer.add_metrics(live, "student", 5, 1, {"val/acc": 0.55})
        writer.add_metrics(live, "student", 10, 2, {"val/acc": 0.75})
        writer.add_metrics(live, "student", 15, 3, {"val/acc": 0.7})
        writer.flush()
        view.poll()
        assert cell(view, live, "status") == "running · student"
        assert cell(view, live, "student_best_val_acc") == "75.00%"
        assert cell(view, live, "student_last_val_acc") == "70.00%"
        writer.finish_run(live, "completed", student_test_acc=0.72, baseline_test_acc=0.7,
                          kd_gain=0.02)
    finally:
        writer.close()
    qtbot.waitUntil(lambda: cell(view, live, "status") == "completed", timeout=3000)
    assert cell(view, live, "kd_gain") == "+2.00"


def test_real_run_in_another_thread_appears_and_completes(qtbot, view: HistoryView,
                                                          db: Path) -> None:
    result: dict = {}

    def work() -> None:
        with Store(db) as store:
            result["run"] = engine_run(tiny_config(), store)

    thread = threading.Thread(target=work)
    thread.start()
    qtbot.waitUntil(lambda: "run" in result, timeout=60_000)
    thread.join()
    run_id = result["run"].run_id
    qtbot.waitUntil(lambda: run_id in view.visible_ids()
                    and cell(view, run_id, "status") == "completed", timeout=3000)
    summary = result["run"].summary
    assert cell(view, run_id, "student_test_acc") == f"{summary['student_test_acc']:.2%}"
    assert cell(view, run_id, "name") == "tiny"


def test_open_and_rerun_emit_the_run(qtbot, view: HistoryView) -> None:
    view.select_runs([4])
    assert view.buttons["Open"].isEnabled() and not view.buttons["Compare"].isEnabled()
    with qtbot.waitSignal(view.open_run_requested) as opened:
        qtbot.mouseClick(view.buttons["Open"], Qt.MouseButton.LeftButton)
    assert opened.args == [4]
    with qtbot.waitSignal(view.rerun_requested) as rerun:
        qtbot.mouseClick(view.buttons["Rerun"], Qt.MouseButton.LeftButton)
    assert rerun.args[0]["name"] == "delta"
    assert rerun.args[0]["distill"]["temperature"] == 2.0
    view.select_runs([4, 1])
    assert not view.buttons["Open"].isEnabled()
    with qtbot.waitSignal(view.compare_requested) as compare:
        qtbot.mouseClick(view.buttons["Compare"], Qt.MouseButton.LeftButton)
    assert sorted(compare.args[0]) == [1, 4]


def test_export_metrics_of_selected_runs(view: HistoryView, tmp_path: Path,
                                         monkeypatch) -> None:
    target = tmp_path / "out" / "metrics.csv"
    monkeypatch.setattr("kdstudio.gui.history.view.save_file_name",
                        lambda *a, **k: str(target))
    view.select_runs([1, 2])
    view.export_metrics_selected()
    with target.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    assert {r["run_name"] for r in rows} == {"alpha", "beta"}
    assert "6 metric rows of 2 runs written" in view.message.text()


def test_export_dialog_exports_a_real_student(qtbot, tmp_path: Path) -> None:
    db = tmp_path / "real.db"
    with Store(db) as store:
        finished = engine_run(tiny_config(), store)
    view = HistoryView(db)
    qtbot.addWidget(view)
    view.select_runs([finished.run_id])
    dialog = view.export_selected()
    assert dialog is not None
    dialog.format_boxes["torchscript"].setChecked(False)
    dialog.format_boxes["onnx"].setChecked(False)
    dialog.folder.setText(str(tmp_path / "export"))
    with qtbot.waitSignal(dialog.exported, timeout=60_000) as ended:
        dialog.export()
        assert dialog.busy and not dialog.export_button.isEnabled()
        dialog.reject()  # closing mid-export waits for the files
        assert dialog.isVisible()
    assert ended.args == [True]
    assert not dialog.busy
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [
        "MODEL_CARD.md", "student.json", "student.safetensors"]
    assert "max |diff| 0.00e+00" in dialog.log.toPlainText()
    dialog.format_boxes["safetensors"].setChecked(False)
    assert not dialog.export_button.isEnabled()
    assert dialog.status.text() == "Pick at least one format"
    with Store(db) as store:
        assert {a["format"] for a in store.artifacts(finished.run_id, "export")} == {
            "json", "safetensors", "markdown"}
    dialog.close()


def test_main_window_rerun_fills_the_form_and_open_shows_the_run_in_the_workbench(
        qtbot, window) -> None:
    from kdstudio.core.config import RunConfig

    saved = tiny_config(temperature=7.5)
    saved.name = "to-rerun"
    with Store(window.db_path) as store:
        run_id = store.create_run(saved.to_dict())
        store.add_metrics(run_id, "student", 4, 1, {"val/acc": 0.6})
        store.finish_run(run_id, "completed", student_test_acc=0.6)
    history = window.history
    history.poll()
    history.select_runs([run_id])
    qtbot.mouseClick(history.buttons["Rerun"], Qt.MouseButton.LeftButton)
    assert window.tabs.currentIndex() == 0
    data, problems = window.setup.config_dict()
    assert problems == []
    assert data["name"] == "to-rerun" and data["distill"]["temperature"] == 7.5
    assert data["data"]["params"]["samples"] == 240
    assert data["student"]["params"]["hidden_sizes"] == [8]
    assert RunConfig().distill.temperature != 7.5  # the value came from the run, not a default
    window.tabs.setCurrentWidget(history)
    qtbot.mouseClick(history.buttons["Open"], Qt.MouseButton.LeftButton)
    assert window.tabs.currentIndex() == 0  # the workbench, with the run replayed
    live = window.live
    assert f"#{run_id}" in live.summary_card.title.text()
    assert "to-rerun" in live.summary_card.title.text()
    assert live.summary_card.cells["student_test_acc"].text() == "60.00%"
    student_val = live.accuracy_chart.series["Student + KD val"]
    assert student_val.xs == [1] and student_val.values.raw == [0.6]

    with Store(window.db_path) as store:  # a run still writing (another process, say)
        busy = store.create_run(saved.to_dict(), name="busy")
    history.poll()
    history.select_runs([busy])
    qtbot.mouseClick(history.buttons["Open"], Qt.MouseButton.LeftButton)
    assert window.tabs.currentWidget() is window.compare
    assert window.compare.run_ids() == [busy]
    assert "still running" in window.statusBar().currentMessage()


# ------------------------------------------------------------ readable table (issue 16, item 8)

def _cells_cut(view: HistoryView, key: str) -> list[str]:
    """Texts of the shown cells of column `key` that do not fit their cell."""
    from PySide6.QtWidgets import QStyleOptionViewItem

    from kdstudio.gui.widgets.elided import is_cut

    table, column = view.table, view.column_of(key)
    cut = []
    for row in range(view.proxy.rowCount()):
        index = view.proxy.index(row, column)
        option = QStyleOptionViewItem()
        option.initFrom(table)
        option.rect = table.visualRect(index)
        option.decorationSize = table.iconSize() if table.iconSize().isValid() else \
            option.decorationSize
        table.itemDelegate().initStyleOption(option, index)
        if is_cut(option, index, index.data()):
            cut.append(index.data())
    return cut


def test_short_values_fit_their_columns_and_headers_leave_room_for_the_arrow(
        qtbot, view: HistoryView, db: Path) -> None:
    with Store(db) as store:  # a running run among the finished ones
        store.create_run(config("epsilon"))
    view.reload()
    for key in ("status", "duration_s", "student_best_val_acc", "student_test_acc",
                "baseline_test_acc", "kd_gain", "compression", "created_at", "models"):
        assert _cells_cut(view, key) == [], key
    header = view.table.horizontalHeader()
    style = header.style()
    from PySide6.QtWidgets import QStyle
    arrow = style.pixelMetric(QStyle.PixelMetric.PM_HeaderMarkSize, None, header)
    for index, column in enumerate(view.model.columns):
        title = header.fontMetrics().horizontalAdvance(column.header)
        assert view.table.columnWidth(index) >= title + arrow + 8, column.key


def test_a_cut_cell_shows_its_full_text_as_a_tooltip(qtbot, view: HistoryView,
                                                     db: Path) -> None:
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QHelpEvent
    from PySide6.QtWidgets import QApplication, QToolTip

    with Store(db) as store:
        add_finished(store, "a-rather-long-run-name-for-the-column", 0.9, 0.8)
    view.reload()
    table = view.table
    table.setColumnWidth(view.column_of("name"), 40)
    index = view.proxy.index(view.visible_ids().index(5), view.column_of("name"))
    centre = table.visualRect(index).center()
    QApplication.sendEvent(table.viewport(), QHelpEvent(
        QEvent.Type.ToolTip, centre, table.viewport().mapToGlobal(centre)))
    assert QToolTip.text() == "a-rather-long-run-name-for-the-column"
    # a cell with a tip of its own leads it with its full text
    failed = view.proxy.index(view.visible_ids().index(3), view.column_of("status"))
    assert failed.data(Qt.ItemDataRole.ToolTipRole) == "failed\nboom"


def test_columns_grow_for_longer_values_but_keep_a_width_the_user_set(
        view: HistoryView, db: Path) -> None:
    name, tags = view.column_of("name"), view.column_of("tags")
    before = view.table.columnWidth(name)
    view.table.horizontalHeader().resizeSection(tags, 33)  # the user drags a header
    with Store(db) as store:
        run_id = add_finished(store, "a-much-longer-name-than-before", 0.9, 0.8)
        store.update_run(run_id, tags=["many", "tags", "that", "need", "room"])
    view.reload()
    assert view.table.columnWidth(name) > before
    assert view.table.columnWidth(tags) == 33


def test_an_empty_history_says_how_to_start_and_counts_read_as_english(
        qtbot, tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    Store(path).close()
    view = HistoryView(path)
    qtbot.addWidget(view)
    view.show()
    assert view.empty_hint.isVisible()
    assert view.empty_hint.text() == "No runs yet: pick a preset and press Start"
    assert view.count_label.text() == "0 runs"
    with Store(path) as store:
        add_finished(store, "only", 0.9, 0.8)
    view.reload()
    assert not view.empty_hint.isVisible()
    assert view.count_label.text() == "1 run"
    view.search.setText("nothing-matches")
    assert view.count_label.text() == "0 of 1 run"
    view.search.setText("")
    view.group_runs_by("dataset")
    assert view.count_label.text() == "1 run in 1 group"
