"""The form's field table (Qt-free): every config value has a field, and the fields' ranges
are the validation rules themselves."""

from __future__ import annotations

import dataclasses
import math

import pytest

from kdstudio.core.config import RULES, RunConfig, validate
from kdstudio.core.config.fields import (
    FIELDS,
    FIELDS_BY_KEY,
    KINDS,
    config_differences,
    method_param_rule,
    param_fields,
)
from kdstudio.core.config.rules import number_problems
from kdstudio.core.distill.methods import METHODS
from kdstudio.core.distill.schedules import SCHEDULED_KEYS
from tests.helpers import tiny_config


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for item in dataclasses.fields(cls):
        key = f"{prefix}{item.name}"
        default = item.default_factory() if item.default_factory is not dataclasses.MISSING \
            else item.default
        if dataclasses.is_dataclass(default):
            keys += _leaf_keys(type(default), key + ".")
        else:
            keys.append(key)
    return keys


def test_every_config_value_has_one_field() -> None:
    keys = [key for key in _leaf_keys(RunConfig) if key != "distill.schedules"]
    assert sorted(set(keys) - set(FIELDS_BY_KEY)) == []
    assert [f"distill.schedules.{k}" for k in SCHEDULED_KEYS] == [
        f.key for f in FIELDS if f.kind == "schedule"]
    assert len(FIELDS_BY_KEY) == len(FIELDS)  # no key twice
    assert {f.kind for f in FIELDS} <= set(KINDS)
    assert all(f.tip for f in FIELDS if f.kind != "params"), "every field has a tooltip"
    terms = {"distill.ce_weight": "α·CE(s, y)", "distill.feature_weight": "γ·MSE(r(f_s), f_t)",
             "distill.kd_weight": "β·T²·KL(softmax(t/T) ‖ softmax(s/T))",
             "distill.temperature": "β·T²·KL(softmax(t/T) ‖ softmax(s/T))"}
    for key, term in terms.items():  # each loss weight shows its own term
        assert term in FIELDS_BY_KEY[key].tip, key
    assert "MSE" not in FIELDS_BY_KEY["distill.kd_weight"].tip


def test_number_fields_carry_the_validation_rule_objects() -> None:
    for key, rule in RULES.items():
        assert FIELDS_BY_KEY[key].rule is rule, key
        assert FIELDS_BY_KEY[key].kind == ("int" if rule.kind is int else "float")


@pytest.mark.parametrize("key", sorted(RULES))
def test_a_fields_range_is_what_validation_accepts(key: str) -> None:
    field, rule = FIELDS_BY_KEY[key], RULES[key]

    def problems_at(value: float) -> list[str]:
        config = tiny_config()
        section, _, name = key.rpartition(".")
        setattr(config if not section else getattr(config, section), name, value)
        return [p for p in number_problems(config) if p.startswith(f"{key}:")]

    low, high = field.minimum, field.maximum
    assert low is not None
    if rule.kind is int:
        assert problems_at(low) == [] and problems_at(low - 1), "the minimum is the edge"
        if high is not None:
            assert problems_at(high) == [] and problems_at(high + 1), "the maximum is the edge"
        return
    inside, outside = math.nextafter(low, math.inf), math.nextafter(low, -math.inf)
    if rule.low_open:  # a float field offers the open bound; validation refuses it
        assert problems_at(low) and problems_at(inside) == []
    else:
        assert problems_at(low) == [] and problems_at(outside)
    if high is not None:
        inside, outside = math.nextafter(high, -math.inf), math.nextafter(high, math.inf)
        assert problems_at(outside)
        assert problems_at(inside) == [] and bool(problems_at(high)) == rule.high_open


def test_the_integer_fields_that_a_spin_box_cannot_hold_are_text_fields() -> None:
    assert not FIELDS_BY_KEY["seed"].fits_int32()  # up to 2**63 - 1
    assert not FIELDS_BY_KEY["data.label_count"].fits_int32()
    assert FIELDS_BY_KEY["data.batch_size"].fits_int32()
    assert FIELDS_BY_KEY["data.batch_size"].maximum == 2**31 - 1
    assert FIELDS_BY_KEY["optim.epochs"].maximum == 100_000


def test_visibility_follows_the_method_dataset_and_optimiser() -> None:
    values = RunConfig().to_dict()
    assert not FIELDS_BY_KEY["optim.step_size"].is_shown(values)
    values["optim"]["schedule"] = "step"
    assert FIELDS_BY_KEY["optim.step_size"].is_shown(values)
    values["optim"]["name"] = "adam"
    assert not FIELDS_BY_KEY["optim.momentum"].is_enabled(values)
    values["optim"]["name"] = "sgd"
    assert FIELDS_BY_KEY["optim.momentum"].is_enabled(values)
    assert not FIELDS_BY_KEY["distill.student_layer"].is_shown(values)  # kd
    values["distill"]["method"] = "fitnets"
    assert FIELDS_BY_KEY["distill.student_layer"].is_shown(values)
    assert not FIELDS_BY_KEY["data.path"].is_shown(values)  # digits is built in
    assert FIELDS_BY_KEY["distill.ce_weight"].is_enabled(values)  # fitnets
    values["distill"]["method"] = "none"
    assert not FIELDS_BY_KEY["distill.baseline"].is_enabled(values)
    ce_weight = FIELDS_BY_KEY["distill.ce_weight"]
    assert not ce_weight.is_enabled(values)
    assert ce_weight.disabled_reason(values) == ("Not used: none trains on the labels' "
                                                  "cross-entropy alone, with weight 1, as a run's "
                                                  "baseline does.")


def test_registry_parameters_become_fields_with_their_rules() -> None:
    fields = {f.key: f for f in param_fields("teacher.params", "cnn")}
    assert {k: f.kind for k, f in fields.items()} == {
        "teacher.params.channels": "list", "teacher.params.kernel_size": "int",
        "teacher.params.global_pool": "bool", "teacher.params.dropout": "float"}
    assert fields["teacher.params.channels"].name == "teacher_params_channels"
    method = next(n for n in METHODS.names() if METHODS.get(n).params)
    for spec, field in zip(METHODS.get(method).params, param_fields("distill.params", method),
                           strict=True):
        assert field.rule == method_param_rule(spec)
        assert field.minimum == spec.minimum
        config = tiny_config(method=method, params={spec.name: spec.maximum + 1})
        assert any(p.startswith(f"distill.params.{spec.name}: must be {field.rule.text}")
                   for p in validate(config))
    assert param_fields("student.params", "no-such-model") == []


def test_config_differences_name_every_value_not_kept() -> None:
    wanted = {"a": 1, "b": {"c": 0.123456, "d": [1, 2]}, "e": True}
    assert config_differences(wanted, {"a": 1.0, "b": {"c": 0.123456, "d": [1, 2]},
                                       "e": True}) == []
    assert config_differences(wanted, {"a": 1, "b": {"c": 0.123, "d": [1]}, "e": 1}) == [
        "b.c: the form cannot hold 0.123456 (it shows 0.123)",
        "b.d: the form cannot hold [1, 2] (it shows [1])",
        "e: the form cannot hold True (it shows 1)"]
    assert config_differences({}, {"x": {"y": 2}}) == ["x: the form cannot hold nothing "
                                                       "(it shows {'y': 2})"]


def test_model_sizes_are_computed_once_per_model_and_data_shape() -> None:
    from kdstudio.core.models import count_parameters, create_model, model_size, model_size_mb

    size = model_size("mlp", {"hidden_sizes": [16]}, (8,), 4)
    assert model_size("mlp", {"hidden_sizes": [16]}, [8], 4) is size  # cached, not rebuilt
    built = create_model("mlp", (8,), 4, hidden_sizes=[16])
    assert size.parameters == count_parameters(built) == 8 * 16 + 16 + 16 * 4 + 4
    assert size.size_mb == model_size_mb(built)
    assert size.layers == tuple(built.feature_layers())
    assert model_size("mlp", {"hidden_sizes": [32]}, (8,), 4).parameters > size.parameters
