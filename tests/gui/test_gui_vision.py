"""A run from the form with a timm teacher and a torchvision student on an image folder,
FitNets on discovered layers (the vision extra: marked `vision`, skipped without it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QPushButton

pytestmark = pytest.mark.vision
pytest.importorskip("torchvision")
pytest.importorskip("timm")

from kdstudio.cli import main  # noqa: E402
from kdstudio.core.models import count_parameters, create_model  # noqa: E402
from kdstudio.core.store import Store  # noqa: E402
from tests.gui.conftest import find, pick  # noqa: E402
from tests.gui.test_data_preview import wait_for_check  # noqa: E402
from tests.test_vision_models import image_folder, vision_config  # noqa: E402


def test_form_run_timm_teacher_torchvision_student_on_an_image_folder(
        qtbot, window, tmp_path: Path) -> None:
    root = image_folder(tmp_path / "images")
    panel = window.setup
    panel.set_config(vision_config(root, "cnn", "mlp").to_dict())
    wait_for_check(qtbot, panel)  # the image folder is checked off the GUI thread
    assert panel.validate_now() == []

    teacher_combo = find(window, QComboBox, "teacherArchCombo")
    student_combo = find(window, QComboBox, "studentArchCombo")
    assert teacher_combo.findData("timm:test_resnet") < 0  # listed once the combo is used
    teacher_combo.setFocus()
    qtbot.waitUntil(lambda: teacher_combo.findData("timm:test_resnet") >= 0, timeout=10_000)
    pick(teacher_combo, "timm:test_resnet")
    student_combo.showPopup()
    student_combo.hidePopup()
    pick(student_combo, "torchvision:shufflenet_v2_x0_5")
    pick(find(window, QComboBox, "methodCombo"), "fitnets")
    teacher_layers = find(window, QComboBox, "teacherLayerCombo")
    student_layers = find(window, QComboBox, "studentLayerCombo")
    panel.validate_now()
    assert [student_layers.itemText(i) for i in range(student_layers.count())] == [
        "conv1", "stage2", "stage3", "stage4", "conv5", "embedding"]
    assert teacher_layers.findText("layer2") >= 0
    teacher_layers.setEditText("layer2")
    student_layers.setEditText("stage2")
    assert panel.validate_now() == []

    with qtbot.waitSignal(window.run_finished, timeout=120_000) as finished:
        qtbot.mouseClick(find(window, QPushButton, "startButton"), Qt.MouseButton.LeftButton)
    result = finished.args[0]
    assert result["status"] == "completed"
    with Store(tmp_path / "history.db") as store:
        row = store.get_run(result["run_id"])
        feature_rows = store.metrics(result["run_id"], name="loss/feature")
    assert (row["teacher_arch"], row["student_arch"]) == (
        "timm:test_resnet", "torchvision:shufflenet_v2_x0_5")
    assert (row["config"]["distill"]["teacher_layer"],
            row["config"]["distill"]["student_layer"]) == ("layer2", "stage2")
    assert row["student_params"] == count_parameters(
        create_model("torchvision:shufflenet_v2_x0_5", (3, 32, 32), 3))
    assert feature_rows and 0.0 <= row["student_test_acc"] <= 1.0

    # the torchvision student exports to every format, each checked against the student
    out = tmp_path / "exported"
    assert main(["export", str(row["id"]), "--db", str(tmp_path / "history.db"), "--out",
                 str(out), "--format", "all"]) == 0
    assert {"student.safetensors", "student.pt", "student.onnx"} <= {
        f.name for f in out.iterdir()}
    with Store(tmp_path / "history.db") as store:
        checked = {a["format"]: a["meta"] for a in store.artifacts(row["id"], kind="export")}
    for fmt in ("safetensors", "torchscript", "onnx"):
        assert checked[fmt]["ok"] and checked[fmt]["max_abs_diff"] < 1e-4, fmt
