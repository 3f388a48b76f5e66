"""The method registry: every method's declarations, its loss parts on tiny real models, CRD's
memory bank."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdstudio.core.config import validate
from kdstudio.core.distill.features import FeatureRecorder
from kdstudio.core.distill.methods import (
    METHODS,
    WEIGHT_KEYS,
    StepOutputs,
    create_method,
    list_methods,
)
from kdstudio.core.distill.methods.crd import ContrastiveMemory
from kdstudio.core.models import create_model
from tests.helpers import tiny_config

NEW_METHODS = ["at", "crd", "dist", "dkd", "lskd", "nst", "pkt", "rkd", "sp"]


def test_registry_lists_every_method() -> None:
    assert set(NEW_METHODS) | {"none", "kd", "fitnets"} <= set(list_methods())


@pytest.mark.parametrize("name", sorted(METHODS.names()))
def test_declarations_are_usable_by_form_and_config(name: str) -> None:
    cls = METHODS.get(name)
    assert cls.label and cls.__doc__
    assert cls.parts and set(cls.parts) <= set(WEIGHT_KEYS)
    for spec in cls.params:
        assert spec.help, f"{name}.{spec.name} has no tooltip"
        assert spec.minimum is not None and spec.maximum is not None
        assert spec.minimum <= spec.default <= spec.maximum
        assert not spec.integer or float(spec.default).is_integer()
    assert set(cls.suggested) <= {"temperature", "ce_weight", "kd_weight", "feature_weight"}


def _models() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    teacher = create_model("cnn", (1, 16), 4, channels=[8, 8])
    student = create_model("cnn", (1, 16), 4, channels=[4, 4])
    return teacher.eval().requires_grad_(False), student


@pytest.mark.parametrize("name", NEW_METHODS + ["fitnets"])
def test_loss_parts_train_the_student_and_adapters_only(name: str) -> None:
    teacher, student = _models()
    method = create_method(name, 2.0, "block2", "block1", {"negatives": 8} if name == "crd" else {})
    x = torch.randn(6, 1, 16, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    with FeatureRecorder(student.feature_layers(), method.student_feature_names()) as s_rec, \
            FeatureRecorder(teacher.feature_layers(), method.teacher_feature_names()) as t_rec:
        with torch.no_grad():
            teacher_logits = teacher(x)
        logits = student(x)
        adapters = method.build_adapters(dict(s_rec.features), dict(t_rec.features), 20)
        out = StepOutputs(logits, y, teacher_logits, s_rec.features, t_rec.features,
                          indices=torch.arange(6))
        parts = method.loss_parts(out, adapters)
    assert set(parts) == set(method.parts)
    assert all(torch.isfinite(v) and v.dim() == 0 for v in parts.values())
    sum(parts.values()).backward()
    assert all(p.grad is not None for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    if adapters is not None:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in adapters.parameters())


def test_feature_methods_ask_for_their_layers() -> None:
    at = create_method("at", 1.0, "hidden1", "block2")
    assert at.student_feature_names() == ["hidden1"]
    assert at.teacher_feature_names() == ["block2"]
    for name in ("rkd", "pkt", "crd"):
        method = create_method(name, 1.0)
        assert method.student_feature_names() == method.teacher_feature_names() == ["embedding"]
    assert create_method("dkd", 1.0).student_feature_names() == []


def test_map_methods_reject_vector_layers_with_the_config_key() -> None:
    for name in ("at", "nst"):
        method = create_method(name, 1.0, "hidden1", "block2")
        problems = method.feature_problems({"hidden1": (32,)}, {"block2": (8, 4)})
        assert len(problems) == 1
        assert problems[0].startswith("distill.student_layer: ")
        assert "convolutional feature map" in problems[0]
    assert create_method("sp", 1.0, "hidden1", "x").feature_problems({"hidden1": (32,)},
                                                                     {"x": (3,)}) == []


def test_method_parameters_reach_the_loss() -> None:
    s = torch.randn(4, 5, generator=torch.Generator().manual_seed(2))
    t = torch.randn(4, 5, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 1, 2, 3])
    plain = create_method("dkd", 4.0).loss_parts(StepOutputs(s, y, t), None)["kd"]
    only_tckd = create_method("dkd", 4.0, params={"beta": 0.0}).loss_parts(
        StepOutputs(s, y, t), None)["kd"]
    only_nckd = create_method("dkd", 4.0, params={"alpha": 0.0}).loss_parts(
        StepOutputs(s, y, t), None)["kd"]
    assert plain.item() == pytest.approx(only_tckd.item() + only_nckd.item(), rel=1e-5)
    assert only_tckd.item() > 0 and only_nckd.item() > 0
    doubled = create_method("dkd", 4.0, params={"beta": 4.0}).loss_parts(
        StepOutputs(s, y, t), None)["kd"]
    assert doubled.item() == pytest.approx(only_tckd.item() + 2 * only_nckd.item(), rel=1e-5)


# ---------------------------------------------------------------- CRD's memory bank


def test_crd_memory_bank_positive_rows_and_momentum_update() -> None:
    memory = ContrastiveMemory(3, 5, feat_dim=4, num_data=10, negatives=6, temperature=0.5,
                               momentum=0.25, seed=1)
    student = torch.randn(2, 3, generator=torch.Generator().manual_seed(4))
    teacher = torch.randn(2, 5, generator=torch.Generator().manual_seed(5))
    indices = torch.tensor([7, 2])
    old_student_rows = memory.bank_student[indices].clone()
    untouched = memory.bank_student[0].clone()
    loss = memory(student, teacher, indices)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()  # the banks have not moved yet: the update waits for the next batch
    assert torch.equal(memory.bank_student[indices], old_student_rows)
    memory.apply_updates()
    v_s = F.normalize(memory.embed_student(student), dim=1).detach()
    expected = F.normalize(0.25 * old_student_rows + 0.75 * v_s, dim=1)
    assert torch.allclose(memory.bank_student[indices], expected, atol=1e-6)
    assert torch.equal(memory.bank_student[0], untouched)
    z = memory.z_student.item()
    assert z > 0
    memory(student, teacher, indices)
    assert memory.z_student.item() == z  # estimated once, on the first batch


def test_crd_first_batch_scores_are_normalised_to_one_over_n() -> None:
    memory = ContrastiveMemory(3, 3, feat_dim=4, num_data=50, negatives=20, temperature=0.1,
                               momentum=0.5, seed=2)
    v = F.normalize(torch.randn(8, 4, generator=torch.Generator().manual_seed(6)), dim=1)
    contrast = torch.randint(50, (8, 21), generator=torch.Generator().manual_seed(7))
    scores = memory._scores(v, memory.bank_teacher, contrast, memory.z_teacher)
    # Z is the mean score times N, so the mean normalised score is exactly 1/N
    assert scores.mean().item() == pytest.approx(1 / 50, rel=1e-5)


def test_crd_caps_negatives_at_the_training_set_size() -> None:
    method = create_method("crd", 1.0, params={"negatives": 10_000, "feat_dim": 16})
    features = {"embedding": torch.randn(2, 7)}
    memory = method.build_adapters(features, features, num_samples=30)
    assert memory.negatives == 29 and memory.bank_teacher.shape == (30, 16)
    assert sum(p.numel() for p in memory.parameters()) == 2 * (7 * 16 + 16)
    with pytest.raises(ValueError, match="at least 2"):
        method.build_adapters(features, features, num_samples=1)
    assert math.isclose(float(memory.momentum), 0.5)


# ---------------------------------------------------------------- config checks


def test_config_rejects_vector_layers_for_map_methods() -> None:
    config = tiny_config(method="at", feature_weight=1.0, student_layer="hidden1",
                         teacher_layer="hidden1")
    problems = validate(config)
    assert problems == [
        "distill.student_layer: method 'AT (Zagoruyko 2017)' needs a convolutional feature map "
        "(channels x length or height x width); layer 'hidden1' gives a vector of 8 values",
        "distill.teacher_layer: method 'AT (Zagoruyko 2017)' needs a convolutional feature map "
        "(channels x length or height x width); layer 'hidden1' gives a vector of 32 values",
    ]
    config.teacher.arch, config.teacher.params = "cnn", {"channels": [4]}
    config.distill.teacher_layer = "block1"
    assert len(validate(config)) == 1


def test_config_needs_an_embedding_for_embedding_methods() -> None:
    config = tiny_config(method="rkd", feature_weight=1.0)
    assert validate(config) == []
    config.student.params = {"hidden_sizes": []}
    assert validate(config) == [
        "student.arch: method 'rkd' needs the 'embedding' layer, which this mlp does not have "
        "(it has: none); give it at least one hidden layer"]


def test_config_rejects_fractional_integer_parameters() -> None:
    config = tiny_config(method="crd", feature_weight=1.0, params={"negatives": 12.5})
    assert validate(config) == ["distill.params.negatives: must be a whole number (got 12.5)"]
    config.distill.params = {"negatives": 12.0, "feat_dim": 1}
    assert validate(config) == ["distill.params.feat_dim: must be in [2, 4096] (got 1)"]


def test_crd_scores_are_the_same_from_a_small_or_a_large_bank() -> None:
    memory = ContrastiveMemory(4, 4, feat_dim=16, num_data=200, negatives=10, temperature=0.07,
                               momentum=0.5, seed=3)
    v = F.normalize(torch.randn(5, 16, generator=torch.Generator().manual_seed(8)), dim=1)
    contrast = torch.randint(200, (5, 11), generator=torch.Generator().manual_seed(9))
    by_product = memory._scores(v, memory.bank_teacher, contrast, torch.tensor(1.0))
    memory.num_data = 10**6  # a bank too big for the product: rows are gathered instead
    by_rows = memory._scores(v, memory.bank_teacher, contrast, torch.tensor(1.0))
    assert torch.allclose(by_product, by_rows, rtol=1e-5)
    expected = torch.exp((memory.bank_teacher[contrast] * v[:, None, :]).sum(2) / 0.07)
    assert torch.allclose(by_product, expected, rtol=1e-5)
