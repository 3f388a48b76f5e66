"""Every registered distillation method runs end to end from the form, with no code of its
own in the GUI: its fields come from the registry."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox

from kdstudio.core.distill.methods import METHODS
from kdstudio.core.store import Store
from tests.gui.conftest import find, pick, set_tiny_run
from tests.gui.test_gui_runs import RUN_TIMEOUT_MS, click

FEATURE_MAP_METHODS = {"at", "nst"}  # attention and selectivity need channels x length


@pytest.mark.parametrize("method", METHODS.names())
def test_each_method_runs_from_the_form(qtbot, window, tmp_path, method: str) -> None:
    set_tiny_run(window, method="kd")
    panel = window.setup
    if method in FEATURE_MAP_METHODS:  # 1-D convolutions over the synthetic vectors
        pick(find(window, QComboBox, "teacherArchCombo"), "cnn")
        panel.teacher_params.widgets["channels"].setText("8")
        pick(find(window, QComboBox, "studentArchCombo"), "cnn")
        panel.student_params.widgets["channels"].setText("4")
    pick(find(window, QComboBox, "methodCombo"), method)
    spec = METHODS.get(method)
    if "feature" in spec.parts:
        find(window, QDoubleSpinBox, "featureWeightSpin").setValue(1.0)
    if spec.uses_hint_layers:
        panel.validate_now()  # fills the layer lists for the chosen models
        layer = "block1" if method in FEATURE_MAP_METHODS else "hidden1"
        for name in ("studentLayerCombo", "teacherLayerCombo"):
            combo = find(window, QComboBox, name)
            assert combo.findText(layer) >= 0, [combo.itemText(i) for i in range(combo.count())]
            combo.setCurrentIndex(combo.findText(layer))
    panel.validate_now()
    assert panel.problems == []
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        click(qtbot, window, "startButton")
    result = finished.args[0]
    assert result["status"] == "completed", result.get("error")
    with Store(tmp_path / "history.db") as store:
        row = store.get_run(result["run_id"])
        names = {r["name"] for r in store.metrics(result["run_id"], phase="student")}
    assert row["method"] == method
    assert {f"loss/{part}" for part in spec.parts} <= names
