"""Config: TOML round trip, --set overrides, and every validation message."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdstudio.core.config import (
    DistillConfig,
    RunConfig,
    apply_overrides,
    config_from_dict,
    parse_override,
    read_toml,
    save_toml,
    validate,
)
from kdstudio.core.presets import list_presets, load_preset
from tests.helpers import tiny_config


def test_toml_round_trip(tmp_path: Path) -> None:
    config = tiny_config(method="fitnets", student_layer="hidden1", teacher_layer="hidden1",
                         feature_weight=2.0)
    save_toml(config, tmp_path / "c.toml")
    loaded, problems = config_from_dict(read_toml(tmp_path / "c.toml"))
    assert problems == []
    assert loaded == config


def test_valid_config_has_no_problems() -> None:
    assert validate(tiny_config()) == []


def test_overrides_parse_toml_values() -> None:
    assert parse_override("distill.temperature=2") == (["distill", "temperature"], 2)
    assert parse_override("student.params.hidden_sizes=[4, 2]")[1] == [4, 2]
    assert parse_override("name=my run")[1] == "my run"
    data = apply_overrides({"distill": {"temperature": 4.0}}, ["distill.temperature=1.5",
                                                               "optim.lr=0.1"])
    assert data == {"distill": {"temperature": 1.5}, "optim": {"lr": 0.1}}
    with pytest.raises(ValueError, match="expected key.path=value"):
        parse_override("temperature")


def test_type_problems_name_the_key() -> None:
    config, problems = config_from_dict({"distill": {"ce_weight": "high"}, "colour": 1,
                                         "optim": {"epochs": 2.5}})
    assert "distill.ce_weight: must be a number (got 'high')" in problems
    assert "optim.epochs: must be an integer (got 2.5)" in problems
    assert any(p.startswith("colour: unknown key") for p in problems)
    assert config.distill.ce_weight == DistillConfig().ce_weight  # the bad value is not kept


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"distill.temperature": 0.0}, "distill.temperature: must be > 0 (got 0)"),
        ({"distill.temperature": -1.0}, "distill.temperature: must be > 0 (got -1)"),
        ({"distill.kd_weight": -0.5}, "distill.kd_weight: must be >= 0 (got -0.5)"),
        ({"distill.ce_weight": 0.0, "distill.kd_weight": 0.0},
         "distill: all loss weights are zero"),
        ({"student.arch": "transformer"}, "student.arch: unknown model 'transformer'"),
        ({"teacher.arch": "vgg"}, "teacher.arch: unknown model 'vgg'"),
        ({"data.dataset": "imagenet"}, "data.dataset: unknown dataset 'imagenet'"),
        ({"distill.method": "magic"}, "distill.method: unknown method 'magic'"),
        ({"data.batch_size": 0}, "data.batch_size: must be >= 1 (got 0)"),
        ({"teacher.checkpoint": "/no/such/teacher.safetensors"},
         "teacher.checkpoint: no such file /no/such/teacher.safetensors"),
        ({"distill.method": "fitnets", "distill.student_layer": "hidden7",
          "distill.teacher_layer": "hidden1"},
         "distill.student_layer: no layer 'hidden7' in mlp (choose from: hidden1, embedding)"),
        ({"optim.name": "lion"}, "optim.name: unknown optimiser 'lion'"),
        ({"device": "tpu"}, "device: unknown device 'tpu'"),
        ({"student.params": {"hidden_sizes": [0]}}, "student.params: hidden_sizes must be"),
        ({"data.val_fraction": 1.0}, "data.val_fraction: must be between 0 and 1"),
    ],
)
def test_each_bad_value_gets_one_line(change: dict, expected: str) -> None:
    config = tiny_config()
    for key, value in change.items():
        section, _, name = key.rpartition(".")
        setattr(getattr(config, section) if section else config, name, value)
    problems = validate(config)
    assert any(p.startswith(expected) for p in problems), problems


def test_all_problems_are_reported_at_once() -> None:
    config = tiny_config(temperature=-1.0, kd_weight=-2.0)
    config.data.batch_size = 0
    config.student.arch = "nope"
    problems = validate(config)
    assert len(problems) == 4


def test_absent_cuda_is_a_clear_problem() -> None:
    import torch

    config = tiny_config()
    config.device = "cuda:7"
    problems = validate(config)
    if torch.cuda.device_count() > 7:
        assert problems == []
    else:
        assert len(problems) == 1
        assert problems[0].startswith("device: 'cuda:7' is not available on this machine "
                                      "(found: cpu")


def test_presets_are_valid() -> None:
    names = list_presets()
    assert {"digits-kd", "mnist1d-kd", "mnist1d-fitnets", "fashion-mnist-kd",
            "synthetic-quick"} <= set(names)
    for name in names:
        config, problems = config_from_dict(load_preset(name))
        no_files = (config.data.dataset == "fashion-mnist" and not Path(
            "/usr/share/datasets/fashion-mnist").is_dir())
        if no_files or name.startswith("cifar100-"):  # the CIFAR presets ask for a folder
            problems += [p for p in validate(config) if not p.startswith("data.path")]
        else:
            problems += validate(config)
        assert problems == [], (name, problems)
        assert config.name == name


def test_defaults_are_sane() -> None:
    config = RunConfig()
    assert config.distill.baseline is True
    assert config.device == "auto"


def test_override_values_that_start_like_toml_must_be_toml() -> None:
    assert parse_override("name=my run")[1] == "my run"  # a bare word is a string
    assert parse_override("name=")[1] == ""
    assert parse_override("optim.lr = 1e-3")[1] == 0.001
    for text, reason in (("optim.lr=[1,", "not valid TOML"), ('name="open', "not valid TOML"),
                         ("seed=12abc", "not valid TOML"),
                         ('name="a"\nseed = 1', "one TOML value, not several lines")):
        with pytest.raises(ValueError, match=reason):
            parse_override(text)


def test_read_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "bin.toml").write_bytes(b"name = 1\x00")
    (tmp_path / "latin.toml").write_bytes(b"name = '\xe9'")
    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbfname = 'x'")
    with pytest.raises(ValueError, match=r"bin\.toml: a binary file, not a TOML config"):
        read_toml(tmp_path / "bin.toml")
    with pytest.raises(ValueError, match=r"latin\.toml: not UTF-8 text \(byte 0xe9 at offset 8"):
        read_toml(tmp_path / "latin.toml")
    with pytest.raises(ValueError, match="is a folder, not a config file"):
        read_toml(tmp_path)
    assert read_toml(tmp_path / "bom.toml") == {"name": "x"}


def test_integer_limits() -> None:
    config = tiny_config()
    config.seed, config.threads, config.optim.epochs = 2**63, 5000, 100_001
    problems = validate(config)
    assert ("seed: must be from 0 to 9,223,372,036,854,775,807 (2**63 - 1, the largest integer "
            "the history stores) (got 9,223,372,036,854,775,808)") in problems
    assert "threads: must be at most 1,024 (got 5,000)" in problems
    assert "optim.epochs: must be at most 100,000 (got 100,001)" in problems
    config.seed = 2**63 - 1
    config.threads, config.optim.epochs = 1024, 100_000
    assert validate(config) == []
