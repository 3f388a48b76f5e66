"""A CIFAR-100 preset in the form: it asks for its folder inline (data.path) and Start waits
for it; with the folder given, the recipe (milestones, crop-flip) is in the widgets."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QComboBox, QLineEdit, QPushButton

from tests.gui.conftest import find
from tests.gui.test_data_preview import wait_for_check
from tests.gui.test_gui_form import problems_text
from tests.test_cifar_presets import write_cifar100


def test_a_cifar100_preset_asks_for_its_folder_before_start(qtbot, window, tmp_path: Path):
    action = next(a for a in window.presets_menu.actions()
                  if a.text() == "cifar100-wrn40_2-wrn16_2")
    action.trigger()
    panel, start = window.setup, find(window, QPushButton, "startButton")
    wait_for_check(qtbot, panel)  # the data check runs off the GUI thread
    assert panel.validate_now() == ["data.path: give the folder holding the CIFAR-100 files"]
    assert "Folder: give the folder holding the CIFAR-100 files" in problems_text(window)
    assert not start.isEnabled()
    assert find(window, QLineEdit, "milestonesEdit").text() == "150, 180, 210"
    assert find(window, QComboBox, "augmentCombo").currentData() == "crop-flip"
    find(window, QLineEdit, "dataPathEdit").setText(str(write_cifar100(tmp_path / "c", "python")))
    wait_for_check(qtbot, panel)
    assert panel.validate_now() == []
    qtbot.waitUntil(start.isEnabled, timeout=3_000)
