"""Building a run's models from their config sections: a registered or custom
architecture (its code imported only when trusted), a teacher checkpoint with its head
replaced for fine-tuning when its classes differ, or an opaque teacher file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kdstudio.core.checkpoint import load_teacher_weights
from kdstudio.core.config import ConfigError, RunConfig
from kdstudio.core.data import Splits
from kdstudio.core.models import FeatureModel, create_model
from kdstudio.core.models.custom import CodeFile, UntrustedCode
from kdstudio.core.models.opaque import load_opaque, output_problem


@dataclass
class BuiltTeacher:
    """The teacher, the epochs its phase trains (0: used as loaded) and lines for the
    run's log."""

    model: FeatureModel
    epochs: int
    notes: list[str] = field(default_factory=list)


def build_model_for(role: str, arch: str, params: dict[str, Any], data: Splits) -> FeatureModel:
    """`role`'s model ('teacher' or 'student') for the data; raises ConfigError naming the
    key (a custom model's file not trusted: the consent line, nothing imported)."""
    try:
        return create_model(arch, data.input_shape, data.num_classes, **params)
    except UntrustedCode as error:
        code = error.code
        raise ConfigError([CodeFile(f"{role}.params.file", code.path, code.sha256)
                           .consent_line()]) from None
    except (ValueError, TypeError) as error:
        raise ConfigError([f"{role}.params: {error}"]) from None


def build_teacher(config: RunConfig, data: Splits, load: bool = True) -> BuiltTeacher:
    """The run's teacher: opaque (`arch = ""`), or built and loaded from its checkpoint
    (fine-tuned with a new head when the checkpoint's head has other classes and
    teacher.epochs > 0; not loaded when not `load`: the checkpoint comes later), or built
    to be trained."""
    t = config.teacher
    if not t.arch:
        return _opaque(t.checkpoint, data)
    model = build_model_for("teacher", t.arch, t.params, data)
    if not t.checkpoint:
        return BuiltTeacher(model, t.epochs)
    if not load:
        return BuiltTeacher(model, 0)
    try:
        note = load_teacher_weights(model, t.checkpoint, fine_tune=t.epochs > 0)
    except ValueError as error:
        raise ConfigError([f"teacher.checkpoint: {error}"]) from None
    if note is None:
        return BuiltTeacher(model, 0)
    return BuiltTeacher(model, t.epochs, [f"{note}; fine-tuned for {t.epochs} epochs"])


def _opaque(checkpoint: str, data: Splits) -> BuiltTeacher:
    try:
        model = load_opaque(checkpoint, data.input_shape)
    except ValueError as error:
        raise ConfigError([f"teacher.checkpoint: {error}"]) from None
    problem = output_problem(model, data.num_classes)
    if problem:
        raise ConfigError([f"teacher.checkpoint: {problem}"])
    model.num_classes = data.num_classes
    return BuiltTeacher(model, 0, [f"Teacher: {model.label} (sha256 {model.sha256}), frozen, "
                                   "its outputs only"])
