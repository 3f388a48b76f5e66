"""Every registered distillation method runs end to end from the form, with no code of its
own in the GUI: its fields come from the registry."""

from __future__ import annotations

import math

import pytest
from PySide6.QtWidgets import QComboBox

from kdstudio.core.distill.methods import METHODS
from kdstudio.core.store import Store
from kdstudio.gui.setup.inputs import NumberEdit
from tests.gui.conftest import find, pick, set_tiny_run
from tests.gui.test_gui_runs import RUN_TIMEOUT_MS, click, run_to_the_end

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
        find(window, NumberEdit, "featureWeightSpin").setValue(1.0)
    if spec.uses_hint_layers:
        panel.validate_now()  # fills the layer lists for the chosen models
        layer = "block1" if method in FEATURE_MAP_METHODS else "hidden1"
        for name in ("studentLayerCombo", "teacherLayerCombo"):
            combo = find(window, QComboBox, name)
            assert combo.findText(layer) >= 0, [combo.itemText(i) for i in range(combo.count())]
            combo.setCurrentIndex(combo.findText(layer))
    panel.validate_now()
    assert panel.problems == []
    result = run_to_the_end(qtbot, window)
    with Store(tmp_path / "history.db") as store:
        row = store.get_run(result["run_id"])
        names = {r["name"] for r in store.metrics(result["run_id"], phase="student")}
    assert row["method"] == method
    assert {f"loss/{part}" for part in spec.parts} <= names


def test_schedules_are_charted_live(qtbot, window, tmp_path) -> None:
    set_tiny_run(window, method="kd", epochs=2)
    config, problems = window.setup.run_config()
    assert problems == []
    config.distill.schedules = {"kd_weight": {"kind": "warmup", "epochs": 1},
                                "temperature": {"kind": "decay", "end": 1.0}}
    window.setup.set_config(config)
    window.setup.validate_now()
    assert window.setup.problems == []
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        click(qtbot, window, "startButton")
    assert finished.args[0]["status"] == "completed"
    chart = window.live.lr_chart
    assert {"lr", "KD weight", "T"} <= set(chart.series)
    with Store(tmp_path / "history.db") as store:
        rows = store.metrics(finished.args[0]["run_id"], name="sched/kd_weight")
    plotted = [v for v in chart.series["KD weight"].values.raw if math.isfinite(v)]
    assert len(rows) == len(plotted) > 0
    assert rows[0]["value"] < rows[-1]["value"] == 0.5  # warmed up to kd_weight
