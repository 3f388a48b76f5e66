"""The setup form: widgets from the registries, inline validation, presets, TOML, settings."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QSplitter,
    QToolButton,
)

from kdstudio.cli.training import load_run_config
from kdstudio.core.checkpoint import save_model
from kdstudio.core.config import RunConfig
from kdstudio.core.devices import available_devices
from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import METHODS, Method, ParamSpec
from kdstudio.core.models import create_model
from kdstudio.core.presets import load_preset
from kdstudio.gui import MainWindow
from kdstudio.gui.setup.inputs import NumberEdit
from kdstudio.gui.setup.panel import SetupPanel
from tests.gui.conftest import find, pick, set_tiny_run, settings_in


def start_button(win: MainWindow) -> QPushButton:
    return find(win, QPushButton, "startButton")


def problems_text(win: MainWindow) -> str:
    """What the problems label shows, as plain text ("" when hidden)."""
    label = find(win, QLabel, "problemsLabel")
    document = QTextDocument()
    document.setHtml(label.text())
    return document.toPlainText() if label.isVisible() else ""


def test_temperature_zero_disables_start_and_says_why(qtbot, window):
    set_tiny_run(window)
    assert start_button(window).isEnabled()
    spin = find(window, NumberEdit, "temperatureSpin")
    spin.setValue(0.0)
    qtbot.waitUntil(lambda: not start_button(window).isEnabled(), timeout=3_000)
    assert "Temperature T: must be > 0 (got 0)" in problems_text(window)
    assert "distill.temperature: must be > 0" in start_button(window).toolTip()
    assert spin.property("invalid") is True
    assert "must be > 0" in spin.toolTip()
    spin.setValue(2.0)
    qtbot.waitUntil(start_button(window).isEnabled, timeout=3_000)
    assert spin.property("invalid") is False
    assert not find(window, QLabel, "problemsLabel").isVisible()


def test_hint_layers_are_listed_and_a_missing_one_disables_start(qtbot, window):
    set_tiny_run(window, method="fitnets")
    find(window, NumberEdit, "featureWeightSpin").setValue(1.0)
    window.setup.validate_now()
    student_layers = find(window, QComboBox, "studentLayerCombo")
    teacher_layers = find(window, QComboBox, "teacherLayerCombo")
    assert [student_layers.itemText(i) for i in range(student_layers.count())] == [
        "hidden1", "embedding"]
    assert student_layers.isVisible() and teacher_layers.isVisible()
    assert start_button(window).isEnabled(), window.setup.problems

    student_layers.setEditText("nope")
    qtbot.waitUntil(lambda: not start_button(window).isEnabled(), timeout=3_000)
    assert "Student hint layer: pick a layer of the mlp ('nope' is not one)" in problems_text(
        window)
    assert student_layers.property("invalid") is True

    # another student architecture lists its own layers and keeps the bad name reported
    window.setup.student_params.widgets["hidden_sizes"].setText("8, 8")
    window.setup.validate_now()
    assert [student_layers.itemText(i) for i in range(student_layers.count())] == [
        "hidden1", "hidden2", "embedding"]
    assert not start_button(window).isEnabled()
    student_layers.setCurrentIndex(1)
    qtbot.waitUntil(start_button(window).isEnabled, timeout=3_000)
    assert window.setup.config_dict()[0]["distill"]["student_layer"] == "hidden2"


def test_model_parameters_get_widgets_from_the_registry_defaults(qtbot, window):
    panel = window.setup
    pick(find(window, QComboBox, "teacherArchCombo"), "mlp")
    pick(find(window, QComboBox, "teacherArchCombo"), "cnn")  # picked: writes every parameter
    widgets = panel.teacher_params.widgets
    assert set(widgets) == {"channels", "kernel_size", "global_pool", "dropout"}
    assert isinstance(widgets["channels"], QLineEdit)
    assert widgets["channels"].text() == "32, 64"
    assert isinstance(widgets["kernel_size"], QSpinBox)
    assert isinstance(widgets["global_pool"], QCheckBox)
    assert isinstance(widgets["dropout"], NumberEdit)  # any float, exactly

    widgets["channels"].setText("16, 24 ,8")
    widgets["kernel_size"].setValue(5)
    widgets["global_pool"].setChecked(True)
    data, problems = panel.config_dict()
    assert problems == []
    assert data["teacher"]["params"] == {"channels": [16, 24, 8], "kernel_size": 5,
                                         "global_pool": True, "dropout": 0.0}

    widgets["channels"].setText("16, x")
    problems = panel.validate_now()
    assert any(p.startswith("teacher.params.channels: expected whole numbers") for p in problems)
    assert widgets["channels"].property("invalid") is True
    widgets["channels"].setText("16")
    widgets["kernel_size"].setValue(4)  # the model itself refuses even kernels
    problems = panel.validate_now()
    assert any(p.startswith("teacher.params: kernel_size must be a positive odd") for p in
               problems)
    assert widgets["kernel_size"].property("invalid") is True
    assert not start_button(window).isEnabled()


class _ScaledKD(Method):
    """Test method: `ce_weight * CE + kd_weight * scale * T^2 * KL`."""

    label = "Scaled KD (test)"
    uses_temperature = True
    parts = ("ce", "kd")
    params = (ParamSpec("scale", 0.5, 0.0, 2.0, "multiplies the KD term"),
              ParamSpec("warmup", 3, 0, 10, "epochs without KD", integer=True))

    def loss_parts(self, out, adapters):
        return {"ce": losses.ce_loss(out.student_logits, out.targets),
                "kd": self.values["scale"] * losses.kd_loss(
                    out.student_logits, out.teacher_logits, self.temperature)}


def test_a_new_method_gets_its_fields_from_its_param_specs(qtbot, monkeypatch):
    monkeypatch.setitem(METHODS._entries, "scaled-kd", _ScaledKD)
    panel = SetupPanel()
    qtbot.addWidget(panel)
    pick(panel.method_combo, "scaled-kd")
    scale = panel.findChild(NumberEdit, "methodParam_scale")
    warmup = panel.findChild(QSpinBox, "methodParam_warmup")
    assert scale is not None and warmup is not None
    assert scale.value() == 0.5 and warmup.value() == 3
    tip = " ".join(scale.toolTip().split())
    assert "multiplies the KD term" in tip and "[0, 2]" in tip
    assert not panel.weight_spins["feature"].isEnabled()  # no 'feature' part
    scale.setValue(1.5)
    assert panel.config_dict()[0]["distill"]["params"] == {"scale": 1.5, "warmup": 3}
    scale.setValue(3.0)
    problems = panel.validate_now()
    assert "distill.params.scale: must be in [0.0, 2.0] (got 3.0)" in problems
    assert scale.property("invalid") is True


def test_sizes_and_compression_follow_the_form(qtbot, window):
    set_tiny_run(window)
    panel = window.setup
    panel.teacher_params.widgets["hidden_sizes"].setText("64")
    panel.validate_now()
    # synthetic, 8 inputs, 4 classes: 8*64+64 + 64*4+4 = 836; student 8*8+8 + 8*4+4 = 108
    assert find(window, QLabel, "teacherSizeLabel").text().startswith("836 params")
    assert find(window, QLabel, "studentSizeLabel").text().startswith("108 params")
    assert find(window, QLabel, "compressionLabel").text() == f"{836 / 108:.1f}× fewer params"
    pick(find(window, QComboBox, "methodCombo"), "none")
    panel.validate_now()
    assert find(window, QLabel, "teacherSizeLabel").text() == "none"
    assert not panel.teacher_group.isEnabled()


def test_device_picker_lists_only_present_devices(window):
    combo = find(window, QComboBox, "deviceCombo")
    assert [combo.itemData(i) for i in range(combo.count())] == ["auto"] + [
        name for name, _ in available_devices()]


def test_every_input_has_a_tooltip_and_loss_weights_show_the_formula(window):
    inputs = [w for kind in (QAbstractSpinBox, QComboBox, QLineEdit, QCheckBox)
              for w in window.setup.findChildren(kind)
              if not isinstance(w.parent(), (QAbstractSpinBox, QComboBox))]
    assert len(inputs) > 25
    missing = [w.objectName() or type(w).__name__ for w in inputs if not w.toolTip().strip()]
    assert missing == []
    for name, term in (("ceWeightSpin", "α·CE(s, y)"), ("featureWeightSpin", "γ·MSE"),
                       ("kdWeightSpin", "β·T²·KL(softmax(t/T) ‖ softmax(s/T))")):
        assert term in find(window, NumberEdit, name).toolTip()


def test_preset_menu_fills_the_form(window):
    action = next(a for a in window.presets_menu.actions() if a.text() == "mnist1d-fitnets")
    assert action.toolTip()
    action.trigger()
    panel = window.setup
    assert find(window, QComboBox, "methodCombo").currentData() == "fitnets"
    assert find(window, QComboBox, "datasetCombo").currentData() == "mnist1d"
    assert panel.teacher_params.widgets["channels"].text() == "64, 64, 64"
    assert find(window, QComboBox, "studentLayerCombo").currentText() == "block2"
    preset = load_preset("mnist1d-fitnets")
    assert find(window, QSpinBox, "epochsSpin").value() == preset["optim"]["epochs"]
    assert find(window, QSpinBox, "teacherEpochsSpin").value() == preset["teacher"]["epochs"]
    assert panel.problems == []


def test_config_saved_as_toml_runs_with_the_cli_unchanged(window, tmp_path):
    set_tiny_run(window, method="fitnets")
    find(window, NumberEdit, "featureWeightSpin").setValue(0.7)
    find(window, QComboBox, "teacherLayerCombo").setCurrentText("hidden1")
    form_config, problems = window.setup.run_config()
    assert problems == []
    path = window.save_config(tmp_path / "saved.toml")
    args = argparse.Namespace(preset=None, config=str(path), device=None, overrides=[])
    assert load_run_config(args).to_dict() == form_config.to_dict()

    find(window, NumberEdit, "temperatureSpin").setValue(9.0)
    pick(find(window, QComboBox, "studentArchCombo"), "cnn")
    assert window.open_config(path) == []
    assert window.setup.run_config()[0].to_dict() == form_config.to_dict()


def test_open_reports_bad_files_without_a_traceback(window, tmp_path, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text: shown.append(text))
    broken = tmp_path / "broken.toml"
    broken.write_text("seed = [", encoding="utf-8")
    assert window.open_config(broken)[0].startswith(f"{broken}: not valid TOML")
    typed = tmp_path / "typed.toml"
    typed.write_text('seed = "x"\n[distill]\ntemperature = 2.5\n', encoding="utf-8")
    assert window.open_config(typed) == ["seed: must be an integer (got 'x')"]
    assert find(window, NumberEdit, "temperatureSpin").value() == 2.5
    assert len(shown) == 2 and "seed: must be an integer" in shown[1]


def test_checkpoint_file_is_checked_against_the_teacher_and_its_sidecar_adopted(
        qtbot, window, tmp_path):
    set_tiny_run(window)
    trained = create_model("mlp", (8,), 4, hidden_sizes=[16, 16])
    weights, _sidecar = save_model(trained, tmp_path / "models", "teacher")
    pick(find(window, QComboBox, "teacherSourceCombo"), "file")
    assert any(p.startswith("teacher.checkpoint: choose the teacher's weight file")
               for p in window.setup.validate_now())
    edit = find(window, QLineEdit, "teacherCheckpointEdit")
    edit.setText(str(weights))
    problems = window.setup.validate_now()
    assert any(p.startswith("teacher.checkpoint: ") and "does not fit mlp" in p
               for p in problems)
    assert not start_button(window).isEnabled()
    assert not find(window, QSpinBox, "teacherEpochsSpin").isEnabled()
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file")
    edit.setText(str(garbage))
    assert any(p.startswith(f"teacher.checkpoint: cannot read {garbage}")
               for p in window.setup.validate_now())
    edit.setText(str(weights))
    edit.editingFinished.emit()  # the file has teacher.json beside it: take its model
    assert window.setup.teacher_params.widgets["hidden_sizes"].text() == "16, 16"
    assert window.setup.validate_now() == []


def test_settings_keep_the_last_config_and_the_layout(qtbot, tmp_path):
    first = MainWindow(db_path=tmp_path / "h.db", settings=settings_in(tmp_path))
    qtbot.addWidget(first)
    first.show()
    set_tiny_run(first)
    find(first, NumberEdit, "temperatureSpin").setValue(2.5)
    first.resize(800, 700)  # not the default 1440 x 900; as wide as the offscreen screen
    splitter = find(first, QSplitter, "liveSplitter")
    splitter.setSizes([330, 220])  # not the default split
    qtbot.wait(10)
    sizes, height = splitter.sizes(), first.height()
    first.close()

    second = MainWindow(db_path=tmp_path / "h.db", settings=settings_in(tmp_path))
    qtbot.addWidget(second)
    second.show()
    qtbot.wait(10)
    assert find(second, NumberEdit, "temperatureSpin").value() == 2.5
    assert find(second, QComboBox, "datasetCombo").currentData() == "synthetic"
    assert second.setup.data_params.widgets["samples"].value() == 300
    # (the offscreen screen is 800 px wide, so the width is clamped; the height is kept)
    assert second.height() == height
    assert find(second, QSplitter, "liveSplitter").sizes() == sizes


@pytest.mark.parametrize("weight", [0.0, 0.6, 0.95])
def test_smoothing_slider_applies_to_step_charts_only(window, weight):
    live = window.live
    for chart in (live.loss_chart, live.accuracy_chart):
        chart.add_series("s", "#000")
        for i, value in enumerate([1.0, 3.0, 2.0, math.nan, 5.0]):
            chart.append("s", i, value)
    live.smoothing.setValue(round(weight * 100))
    live.loss_chart.redraw()
    expected = [1.0]
    if weight:
        expected.append((weight * 1 * (1 - weight) + (1 - weight) * 3) / (1 - weight**2))
    else:
        expected.append(3.0)
    shown = live.loss_chart.series["s"].values.smoothed
    assert shown[:2] == pytest.approx(expected)
    assert math.isnan(shown[3]) and shown[4] == pytest.approx(5.0)  # restarts after a gap
    assert live.accuracy_chart.series["s"].values.smoothed[1] == 3.0  # epoch chart: raw


def test_bad_toml_path_for_save_is_reported(window, tmp_path, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text: shown.append(text))
    assert window.save_config(tmp_path / "missing-folder" / "x.toml") is None
    assert shown and "Cannot write" in shown[0]
    assert not Path(tmp_path / "missing-folder").exists()


def test_more_options_schedules_labels_transfer_and_speed(qtbot, window):
    set_tiny_run(window)
    panel = window.setup
    more = find(window, QToolButton, "moreOptionsButton")
    assert not panel.more.box.isVisible()
    more.click()
    assert panel.more.box.isVisible()
    pick(find(window, QComboBox, "schedule_kd_weight_kind"), "warmup")
    assert find(window, QSpinBox, "schedule_kd_weight_epochs").value() == 1
    find(window, QSpinBox, "schedule_kd_weight_epochs").setValue(3)
    pick(find(window, QComboBox, "schedule_temperature_kind"), "decay")
    find(window, NumberEdit, "labelFractionSpin").setValue(0.5)
    pick(find(window, QComboBox, "transferCombo"), "all")
    find(window, QCheckBox, "cacheTeacherCheck").setChecked(False)
    data, problems = panel.config_dict()
    assert problems == [] and panel.validate_now() == []
    assert data["distill"]["schedules"] == {
        "kd_weight": {"kind": "warmup", "epochs": 3, "start": 0.0},
        "temperature": {"kind": "decay", "epochs": 0, "end": 1.0}}
    assert (data["data"]["label_fraction"], data["data"]["transfer"]) == (0.5, "all")
    assert data["distill"]["cache_teacher"] is False

    find(window, NumberEdit, "schedule_temperature_value").setValue(0.0)
    problems = panel.validate_now()
    assert any(p.startswith("distill.schedules.temperature.end: the temperature must stay > 0")
               for p in problems)
    assert find(window, QComboBox, "schedule_temperature_kind").property("invalid") is True

    pick(find(window, QComboBox, "transferCombo"), "dataset")
    assert find(window, QComboBox, "transferDatasetCombo").isVisible()
    pick(find(window, QComboBox, "transferDatasetCombo"), "digits")
    assert any(p.startswith("data.transfer_dataset: 'digits' gives inputs shaped")
               for p in panel.validate_now())

    loaded = panel.config_dict()[0]
    panel.set_config(RunConfig())
    assert panel.config_dict()[0]["distill"]["schedules"] == {}
    panel.set_config(loaded)
    assert panel.config_dict()[0] == loaded


def test_the_documented_object_names_exist(window):
    from PySide6.QtWidgets import QWidget

    names = ["datasetCombo", "teacherArchCombo", "studentArchCombo", "methodCombo",
             "temperatureSpin", "ceWeightSpin", "kdWeightSpin", "featureWeightSpin",
             "teacherEpochsSpin", "epochsSpin", "seedSpin", "deviceCombo", "startButton",
             "pauseButton", "stopButton", "progressBar", "lossPlot", "accuracyPlot",
             "summaryCard", "mainTabs"]
    assert [n for n in names if window.findChild(QWidget, n) is None] == []
    assert window.tabs.tabText(0) == "Workbench"
