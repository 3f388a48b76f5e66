"""Fixtures of the window tests: a MainWindow on a history file in tmp_path, with its own
QSettings file, and a helper that sets a tiny synthetic run through the form's widgets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QSpinBox

from kdstudio.gui import MainWindow
from kdstudio.gui.gc_guard import collect_on_gui_thread
from kdstudio.gui.setup.inputs import NumberEdit


@pytest.fixture(autouse=True, scope="session")
def _garbage_collected_on_the_gui_thread(qapp) -> None:
    """As in the app: views here start worker threads (runs, analyses), and a collection in
    one of them could destroy a previous test's widgets off the GUI thread."""
    collect_on_gui_thread()


def settings_in(folder: Path) -> QSettings:
    return QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, tmp_path: Path) -> Iterator[MainWindow]:
    win = MainWindow(db_path=tmp_path / "history.db", settings=settings_in(tmp_path))
    win.confirm_close = True  # a test never waits on a dialog
    qtbot.addWidget(win)
    win.show()
    yield win
    if win.controller.thread_alive():
        win.controller.stop_and_wait(10_000)


def pick(combo: QComboBox, value: str) -> None:
    index = combo.findData(value)
    assert index >= 0, f"{value!r} not offered by {combo.objectName()}"
    combo.setCurrentIndex(index)


def find(win: MainWindow, kind: type, name: str):
    widget = win.findChild(kind, name)
    assert widget is not None, f"no {kind.__name__} named {name}"
    return widget


def set_tiny_run(win: MainWindow, teacher_epochs: int = 1, epochs: int = 1,
                 method: str = "kd", samples: int = 300, batch_size: int = 64) -> None:
    """Fill the form through its widgets: synthetic data, MLP 32 -> MLP 8, CPU."""
    panel = win.setup
    pick(find(win, QComboBox, "datasetCombo"), "synthetic")
    panel.data_params.widgets["samples"].setValue(samples)
    panel.data_params.widgets["dims"].setValue(8)
    panel.data_params.widgets["separation"].setValue(3.0)
    find(win, QSpinBox, "batchSizeSpin").setValue(batch_size)
    find(win, NumberEdit, "valFractionSpin").setValue(0.2)
    pick(find(win, QComboBox, "teacherArchCombo"), "mlp")
    panel.teacher_params.widgets["hidden_sizes"].setText("32")
    pick(find(win, QComboBox, "studentArchCombo"), "mlp")
    panel.student_params.widgets["hidden_sizes"].setText("8")
    pick(find(win, QComboBox, "methodCombo"), method)
    find(win, NumberEdit, "temperatureSpin").setValue(4.0)
    find(win, NumberEdit, "ceWeightSpin").setValue(0.5)
    find(win, NumberEdit, "kdWeightSpin").setValue(0.5)
    find(win, QSpinBox, "teacherEpochsSpin").setValue(teacher_epochs)
    find(win, QSpinBox, "epochsSpin").setValue(epochs)
    find(win, NumberEdit, "seedSpin").setValue(1)
    pick(find(win, QComboBox, "deviceCombo"), "cpu")
    find(win, QLineEdit, "runNameEdit").setText("gui-test")
    find(win, QCheckBox, "baselineCheck").setChecked(True)
    panel.validate_now()
    assert panel.problems == []
