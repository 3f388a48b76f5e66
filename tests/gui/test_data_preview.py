"""The data section's preview and pickers, and runs on files started from the form."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel, QLineEdit, QPushButton, QSpinBox, QTableWidget

from kdstudio.core.store import Store
from kdstudio.gui.setup import data_preview
from kdstudio.gui.setup import panel as panel_module
from tests.gui.conftest import find, pick, set_tiny_run
from tests.test_image_folder import BLUE, RED, write_image

RUN_TIMEOUT_MS = 60_000


def image_folder(root: Path, per_class: int = 10) -> Path:
    for i in range(per_class):
        write_image(root / "blue" / f"b{i}.png", BLUE, (8, 8), seed=i)
        write_image(root / "red" / f"r{i}.png", RED, (8, 8), seed=50 + i)
    return root


def csv_table(path: Path, rows: int = 60, bad_row: int | None = None) -> Path:
    rng = np.random.default_rng(0)
    lines = ["f1,f2,kind"]
    for i in range(rows):
        kind = ("low", "high")[i % 2]
        f1 = "oops" if bad_row == i + 2 else f"{rng.normal() + 3 * (i % 2):.3f}"
        lines.append(f"{f1},{rng.normal():.3f},{kind}")
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_for_check(qtbot, panel) -> data_preview.DataCheck:
    """Ask for the check of the form's data now and wait for its result."""
    panel.validate_now()
    qtbot.waitUntil(lambda: not panel.data_checker.pending, timeout=20_000)
    panel.validate_now()
    return panel.data_checker.result


def choose(window, dataset: str, path: Path) -> None:
    pick(find(window, QComboBox, "datasetCombo"), dataset)
    find(window, QLineEdit, "dataPathEdit").setText(str(path))


def path_caption(window) -> str:
    panel = window.setup
    item = panel.inputs["data.path"]
    return panel._forms["data"].labelForField(item.row).text()


def test_image_folder_preview_is_read_off_the_gui_thread(qtbot, window, tmp_path, monkeypatch):
    threads: list[threading.Thread] = []
    real = data_preview.preview_dataset

    def recording(*args):
        threads.append(threading.current_thread())
        return real(*args)

    monkeypatch.setattr(data_preview, "preview_dataset", recording)
    asked: list[tuple] = []
    monkeypatch.setattr(panel_module, "existing_folder",
                        lambda *args: asked.append(args) or str(image_folder(tmp_path / "imgs")))
    panel = window.setup
    pick(find(window, QComboBox, "datasetCombo"), "image-folder")
    assert path_caption(window) == "Folder"
    browse = find(window, QLineEdit, "dataPathEdit").parent().findChild(QPushButton)
    qtbot.mouseClick(browse, Qt.MouseButton.LeftButton)
    assert len(asked) == 1  # a folder picker
    assert find(window, QLineEdit, "dataPathEdit").text() == str(tmp_path / "imgs")
    panel.data_params.widgets["image_size"].setText("8, 8")
    check = wait_for_check(qtbot, panel)
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert check.problems == [] and panel.problems == []
    summary = find(window, QLabel, "dataPreviewSummary")
    assert summary.isVisible()
    assert summary.text() == ("3 × 8 × 8 images, 2 classes; train 14 · val 2 · test 4 "
                              "(test carved from the data)")
    counts = find(window, QTableWidget, "dataPreviewCounts")
    per_class = check.preview.counts
    assert [[counts.item(r, c).text() for c in range(4)] for r in range(2)] == [
        [name, *(str(per_class[split][r]) for split in ("train", "val", "test"))]
        for r, name in enumerate(("blue", "red"))]
    assert sum(per_class["val"]) == 2 and min(per_class["train"]) > 0
    assert len(panel.data_preview.thumbnails) == 2 * 12  # a picture and a caption each
    captions = [w.text() for w in panel.data_preview.thumbnails if w.pixmap().isNull()]
    assert captions[:2] == ["blue", "red"]
    assert not find(window, QTableWidget, "dataPreviewRows").isVisible()


def test_csv_file_picker_first_rows_and_debounced_typing(qtbot, window, tmp_path, monkeypatch):
    good = csv_table(tmp_path / "table.csv")
    asked: list[tuple] = []
    monkeypatch.setattr(panel_module, "open_file_name",
                        lambda *args: asked.append(args) or str(good))
    launched: list[str] = []
    real = data_preview.check_data
    monkeypatch.setattr(data_preview, "check_data",
                        lambda key, config, state: launched.append(config.data.path)
                        or real(key, config, state))
    panel = window.setup
    pick(find(window, QComboBox, "datasetCombo"), "csv")
    assert path_caption(window) == "File"
    edit = find(window, QLineEdit, "dataPathEdit")
    assert "*.csv" in edit.placeholderText()
    qtbot.mouseClick(edit.parent().findChild(QPushButton), Qt.MouseButton.LeftButton)
    assert len(asked) == 1 and "*.csv" in asked[0][3]  # a file picker for CSV tables
    panel.data_params.widgets["label_column"].setText("kind")
    for text in (str(good)[:-3], str(good)[:-1], str(good)):  # typed: one check, the last
        edit.setText(text)
        panel.validate_now()
    check = wait_for_check(qtbot, panel)
    assert launched == [str(good)]
    assert check.problems == [] and panel.problems == []
    rows = find(window, QTableWidget, "dataPreviewRows")
    assert rows.isVisible()
    assert [rows.horizontalHeaderItem(c).text() for c in range(3)] == ["f1", "f2", "kind"]
    assert rows.rowCount() == 5 and rows.item(1, 2).text() == "high"
    assert find(window, QLabel, "dataPreviewSummary").text().startswith(
        "2 features, 2 classes; train ")
    assert panel.data_preview.thumbnails == []


def test_a_bad_file_is_shown_inline_naming_file_row_and_column(qtbot, window, tmp_path):
    bad = csv_table(tmp_path / "bad.csv", rows=10, bad_row=7)
    panel = window.setup
    choose(window, "csv", bad)
    panel.data_params.widgets["label_column"].setText("kind")
    assert wait_for_check(qtbot, panel).problems
    error = find(window, QLabel, "dataPreviewError")
    assert error.isVisible()
    assert error.text() == f"{bad}, row 7, column 'f1': 'oops' is not a finite number"
    assert f"data.path: {bad}, row 7" in panel.problems[0]
    assert find(window, QLineEdit, "dataPathEdit") in panel.marked_widgets()
    assert not find(window, QPushButton, "startButton").isEnabled()
    csv_table(bad, rows=12)  # the file fixed on disk is checked again
    assert wait_for_check(qtbot, panel).problems == [] and panel.problems == []
    assert error.isHidden()
    find(window, QLineEdit, "dataPathEdit").setText(str(tmp_path / "none.csv"))
    wait_for_check(qtbot, panel)
    assert error.text() == f"no such file {tmp_path / 'none.csv'}"


def test_start_waits_for_the_data_check(qtbot, window, tmp_path):
    set_tiny_run(window)
    choose(window, "csv", csv_table(tmp_path / "t.csv"))
    window.setup.data_params.widgets["label_column"].setText("kind")
    _config, problems = window.setup.run_config()
    assert problems == [data_preview.PENDING]  # not read on the GUI thread
    assert window.setup.validate_now() == [data_preview.PENDING]
    assert find(window, QLineEdit, "dataPathEdit") not in window.setup.marked_widgets()
    assert not find(window, QPushButton, "startButton").isEnabled()
    assert not find(window, QLabel, "problemsLabel").isVisible()  # the preview says it
    assert find(window, QLabel, "dataPreviewSummary").isHidden()
    assert not window.setup.data_preview.busy_line.isHidden()
    assert wait_for_check(qtbot, window.setup).problems == []
    assert find(window, QPushButton, "startButton").isEnabled()
    assert window.setup.data_preview.busy_line.isHidden()


def run_from_the_form(qtbot, window, tmp_path) -> dict:
    check = wait_for_check(qtbot, window.setup)
    assert check.problems == [] and window.setup.problems == []
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        button = find(window, QPushButton, "startButton")
        assert button.isEnabled(), button.toolTip()
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    result = finished.args[0]
    assert result["status"] == "completed"
    with Store(tmp_path / "history.db") as store:
        row = store.get_run(result["run_id"])
    assert row["status"] == "completed"
    for key in ("teacher_test_acc", "baseline_test_acc", "student_test_acc"):
        assert 0.0 <= row[key] <= 1.0
    return row


def test_an_image_folder_run_from_the_form(qtbot, window, tmp_path):
    set_tiny_run(window, batch_size=8)
    choose(window, "image-folder", image_folder(tmp_path / "imgs"))
    window.setup.data_params.widgets["image_size"].setText("8, 8")
    find(window, QSpinBox, "data_params_channels").setValue(1)
    # read by a DataLoader with a worker process forked from the window, augmented
    pick(find(window, QComboBox, "loaderCombo"), "stream")
    find(window, QSpinBox, "workersSpin").setValue(1)
    pick(find(window, QComboBox, "augmentCombo"), "crop-flip")
    row = run_from_the_form(qtbot, window, tmp_path)
    assert row["config"]["data"]["dataset"] == "image-folder"
    assert row["config"]["data"]["params"] == {"image_size": [8, 8], "channels": 1}
    data = row["config"]["data"]
    assert (data["loader"], data["workers"], data["augment"]) == ("stream", 1, "crop-flip")
    log = window.live.log_view.toPlainText()
    assert "stream" in log and "crop-flip" in log


def test_a_csv_run_from_the_form(qtbot, window, tmp_path):
    set_tiny_run(window, batch_size=8)
    path = csv_table(tmp_path / "t.csv")
    choose(window, "csv", path)
    window.setup.data_params.widgets["label_column"].setText("kind")
    row = run_from_the_form(qtbot, window, tmp_path)
    assert row["config"]["data"]["path"] == str(path)
    assert row["config"]["data"]["params"] == {"label_column": "kind"}
