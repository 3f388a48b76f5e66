"""The queryable history: columns from config keys and summary metrics, kept in QSettings;
expression filters with an inline error; groups with n and mean ± std; tooltips."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt

from kdstudio.core.store import Store
from kdstudio.gui.history.groups import RUN_IDS_ROLE
from kdstudio.gui.history.view import HistoryView
from kdstudio.gui.widgets.elided import is_cut

# (temperature, seed, student acc, baseline acc)
RUNS = [(2.0, 0, 0.90, 0.89), (4.0, 0, 0.93, 0.90), (4.0, 1, 0.91, 0.90),
        (8.0, 0, 0.88, 0.90), (8.0, 1, 0.92, 0.90), (4.0, 2, 0.89, 0.90)]


def config(temperature: float, seed: int) -> dict:
    return {"name": f"T{temperature:g}-s{seed}", "seed": seed,
            "data": {"dataset": "digits", "batch_size": 64},
            "teacher": {"arch": "cnn", "params": {"channels": [8]}},
            "student": {"arch": "mlp", "params": {"hidden_sizes": [16]}},
            "distill": {"method": "kd", "temperature": temperature, "kd_weight": 0.5},
            "optim": {"lr": 0.05 * (1 + seed)}}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "history.db"
    with Store(path) as store:
        for temperature, seed, acc, alone in RUNS:
            run_id = store.create_run(config(temperature, seed))
            store.finish_run(run_id, "completed", student_test_acc=acc, baseline_test_acc=alone,
                             kd_gain=acc - alone, teacher_best_val_acc=0.97)
    return path


def settings_in(folder: Path) -> QSettings:
    return QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)


def open_view(qtbot, db: Path, settings: QSettings | None = None) -> HistoryView:
    view = HistoryView(db, settings=settings)
    qtbot.addWidget(view)
    view.resize(1300, 500)
    view.show()
    return view


def column_texts(view: HistoryView, key: str) -> dict[int, str]:
    column = view.column_of(key)
    return {view.proxy.index(r, 0).data(Qt.ItemDataRole.UserRole + 2):
            view.proxy.index(r, column).data() for r in range(view.proxy.rowCount())}


def test_config_and_metric_columns_show_values(qtbot, db: Path) -> None:
    view = open_view(qtbot, db)
    assert view.column_of("distill.temperature") == -1
    assert "distill.temperature" in view.model.config_keys
    assert "optim.lr" in view.model.config_keys
    view.toggle_column("distill.temperature", True)
    view.toggle_column("teacher_best_val_acc", True)
    view.toggle_column("optim.lr", True)
    assert column_texts(view, "distill.temperature") == {1: "2", 2: "4", 3: "4", 4: "8",
                                                         5: "8", 6: "4"}
    assert set(column_texts(view, "teacher_best_val_acc").values()) == {"97.00%"}
    assert column_texts(view, "optim.lr")[3] == "0.1"
    header = view.model.headerData
    for column in range(view.model.columnCount()):  # every header says what it is
        assert header(column, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    tip = header(view.column_of("distill.temperature"), Qt.Orientation.Horizontal,
                 Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("Config key distill.temperature")
    # sorting by a config column sorts by its numbers
    view.table.sortByColumn(view.column_of("distill.temperature"), Qt.SortOrder.AscendingOrder)
    assert view.visible_ids()[0] == 1 and set(view.visible_ids()[-2:]) == {4, 5}
    view.toggle_column("optim.lr", False)
    assert view.column_of("optim.lr") == -1


def test_the_column_menu_adds_a_config_key(qtbot, db: Path) -> None:
    view = open_view(qtbot, db)
    view._fill_column_menu()  # what the header's context menu and the button show
    menus = {a.text(): a.menu() for a in view.column_menu.actions() if a.menu()}
    assert set(menus) == {"Summary metrics", "Run fields", "Config keys"}
    config = {a.text(): a.menu() for a in menus["Config keys"].actions() if a.menu()}
    distill = {a.text(): a for a in config["distill"].actions()}
    assert not distill["temperature"].isChecked()
    distill["temperature"].trigger()
    assert view.shown_keys()[-1] == "distill.temperature"
    metrics = {a.text(): a for a in menus["Summary metrics"].actions()}
    metrics["teacher_best_val_acc"].trigger()
    assert view.shown_keys()[-2:] == ["distill.temperature", "teacher_best_val_acc"]
    view._fill_column_menu()
    table = {a.text(): a for a in view.column_menu.actions()}
    table["Notes"].trigger()  # unticking a default column hides it
    assert "notes" not in view.shown_keys()


def test_column_choice_and_order_come_back_in_a_new_window(qtbot, db: Path,
                                                           tmp_path: Path) -> None:
    first = open_view(qtbot, db, settings_in(tmp_path))
    first.toggle_column("distill.temperature", True)
    first.toggle_column("notes", False)
    header = first.table.horizontalHeader()
    header.moveSection(header.visualIndex(first.column_of("distill.temperature")), 1)
    shown = first.shown_keys()
    assert shown[:2] == ["id", "distill.temperature"] and "notes" not in shown
    first.close()
    second = open_view(qtbot, db, settings_in(tmp_path))
    assert second.shown_keys() == shown
    assert second.model.column_keys() == shown  # restored in the model's own order
    assert column_texts(second, "distill.temperature")[4] == "8"


def test_expression_filter_shows_exactly_the_matching_runs(qtbot, db: Path) -> None:
    view = open_view(qtbot, db)
    view.search.setText("kd_gain > 0 and distill.temperature >= 4")
    expected = {i + 1 for i, (t, _s, acc, alone) in enumerate(RUNS)
                if acc - alone > 0 and t >= 4}
    assert set(view.visible_ids()) == expected == {2, 3, 5}
    assert not view.filter_error.isVisibleTo(view)
    assert view.count_label.text() == "3 of 6 runs"
    view.search.setText("(seed == 1 or seed == 2) and not distill.temperature == 8")
    assert set(view.visible_ids()) == {3, 6}
    view.search.setText("kd_gain > 1")  # percent points: a gain above one point
    assert set(view.visible_ids()) == {2, 5}
    view.search.setText("T4")  # no operator: words, as before
    assert set(view.visible_ids()) == {2, 3, 6}


def test_a_bad_filter_shows_the_inline_message(qtbot, db: Path) -> None:
    view = open_view(qtbot, db)
    view.search.setText("kd_gain > 0 an seed == 1")
    assert view.filter_error.isVisibleTo(view)
    assert "unexpected 'an' at column 13" in view.filter_error.text()
    assert len(view.visible_ids()) == 6  # the status filter alone
    view.search.setText("kd_gian > 0")
    assert "no run has a column or config key 'kd_gian'" in view.filter_error.text()
    view.search.setText("kd_gain > 0")
    assert not view.filter_error.isVisibleTo(view)


def test_group_by_a_config_key_shows_n_and_mean_std(qtbot, db: Path) -> None:
    view = open_view(qtbot, db)
    view.group_runs_by("distill.temperature")
    assert view.tables.currentWidget() is view.group_table
    model = view.group_model
    keys = model.header_keys()
    assert keys[:2] == ["distill.temperature", "n"]
    rows = {model.index(r, 0).data(): r for r in range(model.rowCount())}
    assert list(rows) == ["2", "4", "8"]
    n = keys.index("n")
    student = keys.index("student_test_acc")
    assert model.index(rows["4"], n).data() == "3"
    accs = [acc * 100 for t, _s, acc, _a in RUNS if t == 4.0]
    mean = sum(accs) / 3
    spread = (sum((a - mean) ** 2 for a in accs) / 3) ** 0.5
    assert model.index(rows["4"], student).data() == f"{mean:.2f}% ± {spread:.2f}"
    assert model.index(rows["2"], student).data() == "90.00%"  # one run: no ±
    assert model.index(rows["8"], keys.index("method")).data() == "kd"  # shared text
    assert model.index(rows["8"], keys.index("name")).data() == "2 values"
    tip = model.index(rows["8"], keys.index("name")).data(Qt.ItemDataRole.ToolTipRole)
    assert sorted(tip.split("\n")) == ["T8-s0", "T8-s1"]
    assert sorted(model.index(rows["8"], 0).data(RUN_IDS_ROLE)) == [4, 5]
    # the filter applies before grouping; selecting a group selects its runs
    view.search.setText("seed == 0")
    assert [model.index(r, n).data() for r in range(model.rowCount())] == ["1", "1", "1"]
    assert view.count_label.text() == "3 of 6 runs in 3 groups"
    view.group_table.selectRow(2)
    assert view.selected_ids() == [4]
    assert view.buttons["Open"].isEnabled()
    view.group_runs_by("")
    assert view.tables.currentWidget() is view.table


def test_a_cut_cell_has_its_text_as_tooltip(qtbot, db: Path) -> None:
    view = open_view(qtbot, db)
    column = view.column_of("name")
    index = view.proxy.index(0, column)
    from PySide6.QtWidgets import QStyleOptionViewItem

    option = QStyleOptionViewItem()
    option.initFrom(view.table)
    view.table.setColumnWidth(column, 200)
    option.rect = view.table.visualRect(index)
    assert not is_cut(option, index, index.data())
    view.table.setColumnWidth(column, 12)
    option.rect = view.table.visualRect(index)
    assert is_cut(option, index, index.data())
