"""The form keeps the user's intent: a preset's name detaches when its method or models
change, the method's defaults do not overwrite edited weights, and the status says why
Start is disabled, in the form's words."""

from __future__ import annotations

import tomllib

from PySide6.QtWidgets import QComboBox, QLineEdit, QPushButton

from kdstudio.gui.setup.inputs import NumberEdit
from tests.gui.conftest import find, pick, set_tiny_run


def _name(window) -> str:
    return find(window, QLineEdit, "runNameEdit").text()


def test_a_preset_name_detaches_when_method_or_models_change(window, tmp_path):
    assert window.load_preset("mnist1d-kd") == []
    assert _name(window) == "mnist1d-kd"
    pick(find(window, QComboBox, "methodCombo"), "crd")
    assert _name(window) == "custom (from mnist1d-kd)"
    saved = tomllib.loads(window.save_config(tmp_path / "crd.toml").read_text())
    assert saved["name"] == "custom (from mnist1d-kd)"
    pick(find(window, QComboBox, "methodCombo"), "kd")  # back to the preset's method
    assert _name(window) == "mnist1d-kd"
    pick(find(window, QComboBox, "studentArchCombo"), "cnn")
    assert window.setup.config_dict()[0]["name"] == "custom (from mnist1d-kd)"
    pick(find(window, QComboBox, "studentArchCombo"), "mlp")
    assert _name(window) == "mnist1d-kd"
    # a name the user typed is theirs: it never detaches
    find(window, QLineEdit, "runNameEdit").setText("my crd run")
    pick(find(window, QComboBox, "teacherArchCombo"), "mlp")
    assert _name(window) == "my crd run"


def test_changing_the_method_keeps_the_weights_the_user_edited(window):
    assert window.load_preset("mnist1d-kd") == []
    ce, kd = find(window, NumberEdit, "ceWeightSpin"), find(window, NumberEdit, "kdWeightSpin")
    feature = find(window, NumberEdit, "featureWeightSpin")
    ce.setValue(0.3)  # the user's own weight
    pick(find(window, QComboBox, "methodCombo"), "at")  # suggests ce 1, kd 0, feature 100
    assert ce.value() == 0.3
    assert kd.value() == 0.0 and feature.value() == 100.0
    pick(find(window, QComboBox, "methodCombo"), "kd")  # suggests T 4, ce 0.5, kd 0.5
    assert ce.value() == 0.3 and kd.value() == 0.5
    assert find(window, NumberEdit, "temperatureSpin").value() == 4.0
    # a loaded config starts afresh: its values are the method's to replace
    assert window.load_preset("mnist1d-kd") == []
    pick(find(window, QComboBox, "methodCombo"), "at")
    assert ce.value() == 1.0 and feature.value() == 100.0


def test_status_says_cannot_start_with_the_first_reason_in_form_words(qtbot, window):
    set_tiny_run(window)
    status = window.status_label
    start = find(window, QPushButton, "startButton")
    qtbot.waitUntil(start.isEnabled, timeout=3_000)
    assert status.text() == "Ready"
    find(window, NumberEdit, "temperatureSpin").setValue(0.0)
    qtbot.waitUntil(lambda: not start.isEnabled(), timeout=3_000)
    assert status.text() == "Cannot start: Temperature T: must be > 0 (got 0)"
    find(window, NumberEdit, "temperatureSpin").setValue(2.0)
    qtbot.waitUntil(start.isEnabled, timeout=3_000)
    assert status.text() == "Ready"


def test_a_missing_hint_layer_is_named_by_its_label(qtbot, window):
    set_tiny_run(window, method="fitnets")
    find(window, QComboBox, "teacherLayerCombo").setEditText("nope")
    window.setup.validate_now()
    status = window.status_label.text()
    assert status.startswith("Cannot start: Teacher hint layer: no layer 'nope' in mlp")
    assert window.setup.readable("teacher.params.x: bad") == "teacher.params.x: bad"
