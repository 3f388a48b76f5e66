"""The form keeps the user's intent: a preset's name detaches when its method or models
change, the method's defaults do not overwrite edited weights, the status and the marks say
why Start is disabled in the form's words, marked spin boxes keep their arrows, and fields
that do not apply are disabled with the reason in their tooltip."""

from __future__ import annotations

import tomllib

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
)

from kdstudio.core.config.fields import FIELDS, FIELDS_BY_KEY, param_fields
from kdstudio.core.config.tips import TIP_WIDTH
from kdstudio.core.data import list_datasets
from kdstudio.core.distill.methods import list_methods
from kdstudio.core.models import list_models, model_size
from kdstudio.gui.setup.inputs import NumberEdit
from tests.gui.conftest import find, pick, set_tiny_run
from tests.helpers import tiny_config


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


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_a_missing_hint_layer_is_named_by_its_label_and_says_what_to_do(qtbot, window):
    set_tiny_run(window, method="fitnets")
    combo = find(window, QComboBox, "teacherLayerCombo")
    combo.setEditText("nope")
    window.setup.validate_now()
    advice = "Teacher hint layer: pick a layer of the mlp ('nope' is not one): hidden1"
    assert window.status_label.text().startswith("Cannot start: " + advice)
    assert advice in window.problems_label.text()
    assert "distill.teacher_layer" not in window.problems_label.text()
    assert combo.property("invalid") is True
    assert "⚠ " + advice in _flat(combo.toolTip())
    assert "distill.teacher_layer" not in combo.toolTip()
    assert window.setup.readable("teacher.params.hidden_sizes: bad") == "Teacher hidden sizes: bad"
    assert window.setup.readable("seed: not a number ('x')") == "Seed: type a number (got 'x')"
    assert window.setup.readable("nowhere.key: bad") == "nowhere.key: bad"


def _arrow_pixels(spin: QSpinBox) -> int:
    """Dark pixels in the button column at the right of a spin box (its arrows)."""
    image = spin.grab().toImage()
    dark = 0
    for x in range(image.width() - 16, image.width() - 2):
        for y in range(2, image.height() - 2):
            if QColor(image.pixel(x, y)).lightness() < 140:
                dark += 1
    return dark


def test_a_marked_spin_box_keeps_its_arrows(qtbot, window):
    set_tiny_run(window)
    spin = find(window, QSpinBox, "epochsSpin")
    spin.resize(160, 28)
    plain = _arrow_pixels(spin)
    assert plain > 4
    window.setup.marks.mark(["optim.epochs: must be >= 1 (got 0)"], {})
    assert spin.property("invalid") is True
    assert "::up-arrow" in window.setup.styleSheet()
    assert _arrow_pixels(spin) > 4  # a border-only style leaves this column blank
    window.setup.marks.mark([], {})
    assert spin.property("invalid") is False


def test_fields_that_do_not_apply_are_disabled_and_say_why(window):
    set_tiny_run(window)
    test_fraction = find(window, NumberEdit, "testFractionSpin")
    assert test_fraction.isEnabled()  # synthetic data: the test split is carved out
    pick(find(window, QComboBox, "datasetCombo"), "mnist1d")
    assert not test_fraction.isEnabled()
    assert "official test split" in _flat(test_fraction.toolTip())
    caption = window.setup._forms["data"].labelForField(test_fraction)
    assert "official test split" in _flat(caption.toolTip())
    pick(find(window, QComboBox, "datasetCombo"), "digits")
    assert test_fraction.isEnabled() and "Not used" not in test_fraction.toolTip()
    momentum = find(window, NumberEdit, "momentumSpin")
    pick(find(window, QComboBox, "optimizerCombo"), "adam")
    assert not momentum.isEnabled() and "only SGD" in _flat(momentum.toolTip())
    assert not find(window, QCheckBox, "nesterovCheck").isEnabled()
    pick(find(window, QComboBox, "methodCombo"), "none")
    kd = find(window, NumberEdit, "kdWeightSpin")
    assert not kd.isEnabled() and "has no KL term" in _flat(kd.toolTip())
    pick(find(window, QComboBox, "methodCombo"), "kd")
    assert kd.isEnabled() and not kd.toolTip().startswith("Not used")
    share = find(window, NumberEdit, "labelFractionSpin")
    assert share.isEnabled()
    window.setup.inputs["data.label_count"].widget.setValue(50)  # the count replaces the share
    assert not share.isEnabled() and "takes its place" in _flat(share.toolTip())
    cache = find(window, QCheckBox, "cacheTeacherCheck")
    assert cache.isEnabled()
    pick(find(window, QComboBox, "augmentCombo"), "crop-flip")
    assert not cache.isEnabled() and "new inputs every epoch" in _flat(cache.toolTip())
    assert not find(window, QCheckBox, "autocastCheck").isEnabled()  # device cpu


def test_a_data_path_problem_is_named_as_the_form_shows_it(window):
    pick(find(window, QComboBox, "datasetCombo"), "cifar10")
    assert window.setup.readable("data.path: give the folder") == "Folder: give the folder"
    pick(find(window, QComboBox, "datasetCombo"), "csv")
    assert window.setup.readable("data.path: give the file") == "File: give the file"


def _saved_run(store, config, status: str) -> int:
    run_id = store.create_run(config.to_dict())
    store.finish_run(run_id, status)
    return run_id


def _params(hidden: list[int], dims: int, classes: int) -> str:
    return f"{model_size('mlp', {'hidden_sizes': hidden}, (dims,), classes).parameters:,} params"


def test_opening_a_run_shows_its_config_sizes_and_status_read_only(qtbot, window):
    a = tiny_config(temperature=3.0)
    a.name = "run-a"
    b = tiny_config(temperature=7.0, method="dkd")
    b.name = "run-b"
    b.data.params = {"samples": 240, "dims": 10, "classes": 5, "separation": 1.0}
    b.teacher.params, b.student.params = {"hidden_sizes": [48]}, {"hidden_sizes": [12, 6]}
    store = window.store  # the window's own history file
    run_a, run_b = _saved_run(store, a, "completed"), _saved_run(store, b, "stopped")
    panel = window.setup
    temperature = find(window, NumberEdit, "temperatureSpin")

    assert window.open_run(run_a)
    assert temperature.value() == 3.0 and _name(window) == "run-a"
    assert panel.sizes.student_label.text().startswith(_params([8], 6, 3))
    assert window.status_label.text() == f"Viewing run #{run_a} run-a (completed)"

    assert window.open_run(run_b)
    assert temperature.value() == 7.0 and _name(window) == "run-b"
    assert find(window, QComboBox, "methodCombo").currentData() == "dkd"
    assert panel.student_params.widgets["hidden_sizes"].text() == "12, 6"
    assert panel.sizes.student_label.text().startswith(_params([12, 6], 10, 5))
    assert panel.sizes.teacher_label.text().startswith(_params([48], 10, 5))
    status = f"Viewing run #{run_b} run-b (stopped)"
    assert window.status_label.text() == status
    assert status in panel.banner.label.text() and panel.banner.isVisible()
    assert window.live.summary_card.title.text().count("stopped") == 1
    # read-only: the fields are disabled until Edit, and validation keeps the status
    assert not temperature.isEnabled() and panel.scroll.isEnabled()  # it still scrolls
    panel.validate_now()
    assert window.status_label.text() == status
    find(window, QPushButton, "viewingEditButton").click()
    assert temperature.isEnabled() and not panel.banner.isVisible()
    assert panel.viewing_run is None
    qtbot.waitUntil(lambda: window.status_label.text() == "Ready" or
                    window.status_label.text().startswith("Cannot start"), timeout=3_000)
    assert temperature.value() == 7.0  # Edit starts from the run's config


def test_rerun_on_the_banner_starts_the_opened_run_again(qtbot, window):
    config = tiny_config()
    config.name = "again"
    run_id = _saved_run(window.store, config, "completed")
    assert window.open_run(run_id)
    with qtbot.waitSignal(window.run_finished, timeout=60_000):
        find(window, QPushButton, "viewingRerunButton").click()
        assert window.setup.viewing_run is None
    newest = max(window.store.list_runs(), key=lambda row: row["id"])
    assert newest["id"] > run_id and newest["name"] == "again"
    assert newest["status"] == "completed"


def _too_wide(tip: str) -> list[str]:
    """Lines wider than a tooltip may be (one long word, such as a path, may stand alone)."""
    return [line for line in tip.split("\n") if len(line) > TIP_WIDTH and " " in line.strip()]


def test_every_tooltip_is_at_most_60_characters_wide(window):
    fields = [*FIELDS]
    for key, names in (("student.params", list_models()), ("data.params", list_datasets()),
                       ("distill.params", list_methods())):
        for name in names:
            fields += param_fields(key, name)
    assert len(fields) > 80
    wide = {f.key: _too_wide(f.tip) for f in fields if _too_wide(f.tip)}
    assert wide == {}
    set_tiny_run(window, method="fitnets")
    window.setup.marks.mark(["distill.teacher_layer: no layer 'x' in mlp (choose from: "
                             "hidden1, embedding, and a few more names to make it long)"], {})
    pick(find(window, QComboBox, "optimizerCombo"), "adam")  # disabled: a reason first
    shown = [w for kind in (QAbstractSpinBox, QComboBox, QLineEdit, QCheckBox, QLabel)
             for w in window.setup.findChildren(kind)]
    tips = {f"{w.objectName()}:{i}": w.toolTip() for i, w in enumerate(shown) if w.toolTip()}
    for combo in window.setup.findChildren(QComboBox):
        for i in range(combo.count()):
            tip = combo.itemData(i, Qt.ItemDataRole.ToolTipRole)
            tips[f"{combo.objectName()}[{i}]"] = tip or ""
    assert len(tips) > 60
    assert {name: _too_wide(tip) for name, tip in tips.items() if _too_wide(tip)} == {}


def test_the_kd_weight_tooltip_shows_the_kd_term():
    tip = FIELDS_BY_KEY["distill.kd_weight"].tip
    assert "β·T²·KL(softmax(t/T) ‖ softmax(s/T))" in tip
    assert "MSE" not in tip and "f_s" not in tip  # not the FitNets term
    assert "T²" in FIELDS_BY_KEY["distill.temperature"].tip
