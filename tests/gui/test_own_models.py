"""Your own models in the window: the consent dialog before a custom model's file is
imported (Cancel starts and imports nothing, Trust runs it), an ONNX teacher, the teacher's
test figure."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QComboBox, QMessageBox, QPushButton, QSpinBox

from kdstudio.core.events import PhaseTested
from kdstudio.core.models.custom import forget_trust
from kdstudio.core.store import Store
from kdstudio.gui.setup import composites
from tests.gui.conftest import find, pick, set_tiny_run
from tests.gui.test_gui_runs import RUN_TIMEOUT_MS, click, run_to_the_end

MODELS_PY = '''\
# {tag}
import pathlib
from torch import nn

pathlib.Path(__file__).with_name("imported.marker").write_text("imported")


def make(num_classes, input_shape):
    return nn.Sequential(nn.Linear(input_shape[0], 16), nn.ReLU(), nn.Linear(16, num_classes))
'''


@pytest.fixture(autouse=True)
def _no_trust():
    forget_trust()
    yield
    forget_trust()


def custom_teacher(window, tmp_path: Path, monkeypatch) -> Path:
    """A custom teacher whose file is chosen with its Browse button (the dialog answered)."""
    models = tmp_path / "user" / "models.py"
    models.parent.mkdir()
    models.write_text(MODELS_PY.format(tag=tmp_path), encoding="utf-8")
    set_tiny_run(window)
    pick(find(window, QComboBox, "teacherArchCombo"), "custom")
    asked: list[str] = []
    monkeypatch.setattr(composites, "open_file_name",
                        lambda _parent, _caption, _start, name_filter:
                        asked.append(name_filter) or str(models))
    edit = window.setup.teacher_params.widgets["file"]
    edit.parent().findChild(QPushButton).click()
    assert edit.text() == str(models) and "*.py" in asked[0]
    window.setup.validate_now()
    assert window.setup.problems == []  # the form does not import the file to check it
    return models


def answer_consent(qtbot, button: str, seen: list[str]) -> None:
    """When the consent dialog is up, note its text and press `button`."""
    def press() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, press)
            return
        seen.append(box.text())
        box.findChild(QPushButton, button).click()

    QTimer.singleShot(0, press)


def test_cancel_in_the_consent_dialog_starts_and_imports_nothing(qtbot, window, tmp_path,
                                                                monkeypatch):
    models = custom_teacher(window, tmp_path, monkeypatch)
    seen: list[str] = []
    answer_consent(qtbot, "cancelCodeButton", seen)
    click(qtbot, window, "startButton")
    digest = hashlib.sha256(models.read_bytes()).hexdigest()
    assert len(seen) == 1 and str(models) in seen[0] and digest in seen[0]
    assert not window.controller.running
    assert "not trusted" in window.status_label.text()
    assert not (models.parent / "imported.marker").exists()
    with Store(tmp_path / "history.db") as store:
        assert store.list_runs() == []


def test_trust_in_the_consent_dialog_runs_with_the_code(qtbot, window, tmp_path, monkeypatch):
    models = custom_teacher(window, tmp_path, monkeypatch)
    seen: list[str] = []
    answer_consent(qtbot, "trustCodeButton", seen)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        click(qtbot, window, "startButton")
    assert len(seen) == 1
    result = finished.args[0]
    assert result["status"] == "completed"
    assert (models.parent / "imported.marker").read_text() == "imported"
    with Store(tmp_path / "history.db") as store:
        code = store.artifacts(result["run_id"], "code")
        assert [row["sha256"] for row in code] == [hashlib.sha256(models.read_bytes())
                                                   .hexdigest()]
    card = window.live.summary_card
    assert card.cells["teacher_test_acc"].text() == f"{result['summary']['teacher_test_acc']:.2%}"


def test_the_teachers_test_figure_shows_as_soon_as_it_is_measured(window):
    live = window.live
    live.begin_run()
    live.push(PhaseTested(1, "teacher", 0.875))
    live.drain()
    card = live.summary_card
    assert card.cells["teacher_test_acc"].text() == "87.50%"
    assert card.cells["student_test_acc"].text() == "—"


def test_an_onnx_teacher_from_the_form_refuses_feature_methods_and_runs_kd(qtbot, window,
                                                                          tmp_path):
    import warnings

    import torch

    from kdstudio.core.models import create_model
    from kdstudio.gui.setup.teacher_source import SOURCE_FILE

    teacher = create_model("mlp", (8,), 4, hidden_sizes=[16]).eval()
    onnx_file = tmp_path / "teacher.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(teacher, (torch.zeros(2, 8),), str(onnx_file), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    set_tiny_run(window)
    panel = window.setup
    arch_combo = find(window, QComboBox, "teacherArchCombo")
    pick(arch_combo, "")
    assert arch_combo.currentText().startswith("file only")  # its label shows, "" is the value
    assert panel.config_dict()[0]["teacher"]["arch"] == ""
    panel.teacher_source.set_source(SOURCE_FILE)
    panel.teacher_source.checkpoint.widget.setText(str(onnx_file))
    find(window, QSpinBox, "teacherEpochsSpin").setValue(0)
    pick(find(window, QComboBox, "methodCombo"), "fitnets")
    panel.validate_now()
    assert ("distill.method: fitnets needs the teacher's inner layers; an ONNX teacher gives "
            "only its outputs") in panel.problems
    pick(find(window, QComboBox, "methodCombo"), "kd")
    panel.validate_now()
    assert panel.problems == []
    result = run_to_the_end(qtbot, window)
    assert window.live.summary_card.cells["teacher_test_acc"].text() == (
        f"{result['summary']['teacher_test_acc']:.2%}")
