"""The form is a view of the config: presets round-trip exactly, values the old spin boxes
clipped are kept, and whatever the form cannot hold is reported by key path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox, QSpinBox

from kdstudio.core.config import config_from_dict, read_toml, save_toml
from kdstudio.core.paths import presets_dir
from kdstudio.core.presets import list_presets
from kdstudio.gui import MainWindow
from kdstudio.gui.setup.inputs import NumberEdit
from tests.gui.conftest import find, settings_in
from tests.helpers import tiny_config

SIX_VALUES = {"distill.temperature": 2000.0, "optim.lr": 3e-7, "optim.weight_decay": 1.25e-7,
              "data.batch_size": 2_000_000, "distill.kd_weight": 0.123456}


@pytest.fixture
def warnings(monkeypatch) -> list[str]:
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text: shown.append(text))
    return shown


def _set(data: dict, key: str, value: object) -> None:
    *parents, last = key.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def _get(data: dict, key: str) -> object:
    for part in key.split("."):
        data = data[part]
    return data


def _round_trip(window: MainWindow, tmp_path: Path, data: dict) -> tuple[list[str], dict]:
    source = tmp_path / "in.toml"
    config, problems = config_from_dict(data)
    assert problems == []
    save_toml(config, source)
    reported = window.open_config(source)
    window.status_after_open = window.statusBar().currentMessage()
    saved = window.save_config(tmp_path / "out.toml")
    assert saved is not None
    return reported, read_toml(saved)


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_round_trips_exactly(window, tmp_path, warnings, name):
    path = presets_dir() / f"{name}.toml"
    expected, problems = config_from_dict(read_toml(path))
    assert problems == []
    assert window.open_config(path) == []
    saved = window.save_config(tmp_path / "saved.toml")
    assert read_toml(saved) == expected.to_dict()
    assert warnings == []


@pytest.mark.parametrize("temperature", [2000.0, 0.0001])
def test_the_values_spin_boxes_clipped_are_kept_exactly(window, tmp_path, warnings,
                                                        temperature):
    data = tiny_config().to_dict()
    for key, value in {**SIX_VALUES, "distill.temperature": temperature}.items():
        _set(data, key, value)
    reported, saved = _round_trip(window, tmp_path, data)
    assert reported == [] and warnings == []
    assert saved == config_from_dict(data)[0].to_dict()
    for key, value in {**SIX_VALUES, "distill.temperature": temperature}.items():
        assert _get(saved, key) == value and type(_get(saved, key)) is type(value), key
    assert find(window, NumberEdit, "lrSpin").text() == "3e-07"
    assert find(window, NumberEdit, "temperatureSpin").value() == temperature
    assert find(window, QSpinBox, "batchSizeSpin").value() == 2_000_000


def test_integers_up_to_their_schema_maximum_are_kept(window, tmp_path, warnings):
    data = tiny_config().to_dict()
    for key, value in {"seed": 2**63 - 1, "data.batch_size": 2**31 - 1,
                       "data.label_count": 2**40, "optim.epochs": 100_000}.items():
        _set(data, key, value)
    reported, saved = _round_trip(window, tmp_path, data)
    assert reported == []
    assert (saved["seed"], saved["data"]["batch_size"], saved["data"]["label_count"]) == (
        2**63 - 1, 2**31 - 1, 2**40)


def test_invalid_values_are_reported_by_key_path_and_nothing_is_altered_silently(
        window, tmp_path, warnings):
    data = tiny_config().to_dict()
    _set(data, "distill.temperature", -1.0)  # a text field holds it: validation marks it
    _set(data, "data.batch_size", 0)  # below the spin box's range: reported
    _set(data, "optim.epochs", 1_000_000)  # above it: reported
    reported, saved = _round_trip(window, tmp_path, data)
    assert saved["distill"]["temperature"] == -1.0
    assert "distill.temperature: must be > 0 (got -1)" in window.setup.problems
    assert find(window, NumberEdit, "temperatureSpin").property("invalid") is True
    assert [p.split(":")[0] for p in reported] == ["data.batch_size", "optim.epochs"]
    assert reported[0].startswith("data.batch_size: the form cannot hold 0")
    assert find(window, QSpinBox, "batchSizeSpin").property("invalid") is True
    assert "⚠ Batch size: the form cannot hold 0" in find(  # in the form's words
        window, QSpinBox, "batchSizeSpin").toolTip()
    assert len(warnings) == 1 and "optim.epochs: the form cannot hold 1000000" in warnings[0]
    assert "2 value(s) could not be kept: data.batch_size" in window.status_after_open
    # the mark goes once the field is edited
    find(window, QSpinBox, "batchSizeSpin").setValue(64)
    window.setup.validate_now()
    assert find(window, QSpinBox, "batchSizeSpin").property("invalid") is False


def test_unknown_parameters_and_schedule_keys_are_kept_or_reported(window, tmp_path, warnings):
    data = tiny_config().to_dict()
    _set(data, "student.params.colour", "red")  # not a model parameter: kept, validation names it
    _set(data, "distill.schedules.kd_weight", {"kind": "warmup", "epochs": 2})
    _set(data, "distill.schedules.gamma", {"kind": "decay"})  # no such scheduled value
    reported, saved = _round_trip(window, tmp_path, data)
    assert saved["student"]["params"]["colour"] == "red"
    assert saved["distill"]["schedules"]["kd_weight"] == {"kind": "warmup", "epochs": 2}
    assert [p.split(":")[0] for p in reported] == ["distill.schedules.gamma"]
    assert any(p.startswith("student.params: ") for p in window.setup.problems)


def test_rerun_and_the_last_config_go_through_the_same_loading_path(qtbot, tmp_path, warnings):
    data = tiny_config().to_dict()
    for key, value in SIX_VALUES.items():
        _set(data, key, value)
    first = MainWindow(db_path=tmp_path / "h.db", settings=settings_in(tmp_path))
    qtbot.addWidget(first)
    first.show()
    qtbot.waitUntil(lambda: first.setup is not None, timeout=30_000)
    assert first.rerun_config(json.loads(json.dumps(data)))
    assert first.setup.load_problems == []
    assert first.setup.config_dict()[0] == config_from_dict(data)[0].to_dict()
    bad = json.loads(json.dumps(data))
    _set(bad, "optim.epochs", 1_000_000)
    first.rerun_config(bad)
    assert [p.split(":")[0] for p in first.setup.load_problems] == ["optim.epochs"]
    assert warnings and "optim.epochs" in warnings[-1]
    first.rerun_config(data)
    first.close()

    second = MainWindow(db_path=tmp_path / "h.db", settings=settings_in(tmp_path))
    qtbot.addWidget(second)
    second.show()
    qtbot.waitUntil(lambda: second.setup is not None, timeout=30_000)
    assert second.setup.config_dict()[0] == config_from_dict(data)[0].to_dict()
