"""Checks of the `[distill]` section that need the method registry or built models; called by
`config.validate`. Each problem is one line starting with its key path."""

from __future__ import annotations

from typing import Any

import torch

from kdstudio.core.distill.features import FeatureRecorder
from kdstudio.core.distill.methods import METHODS, create_method
from kdstudio.core.distill.schedules import schedule_problems


def distill_problems(config: Any) -> list[str]:
    """Schedules, and integer method parameters given as fractions."""
    d = config.distill
    problems = schedule_problems(d.schedules)
    if d.method in METHODS:
        specs = {spec.name: spec for spec in METHODS.get(d.method).params}
        for key, value in d.params.items():
            spec = specs.get(key)
            if (spec is not None and spec.integer and isinstance(value, float)
                    and not value.is_integer()):
                problems.append(f"distill.params.{key}: must be a whole number (got {value})")
    return problems


@torch.no_grad()
def _feature_shapes(model: Any, names: list[str]) -> dict[str, tuple[int, ...]]:
    layers = model.feature_layers()
    present = [name for name in names if name in layers]
    was_training = model.training
    model.eval()
    with FeatureRecorder(layers, present) as recorder:
        model(torch.zeros(2, *model.input_shape))
        shapes = {name: tuple(value.shape[1:]) for name, value in recorder.features.items()}
    model.train(was_training)
    return shapes


def feature_problems(config: Any, student: Any, teacher: Any) -> list[str]:
    """The method's fixed feature layers (e.g. 'embedding') exist in both models and the
    features have the shapes it needs. `student`/`teacher` are built models or None."""
    d = config.distill
    if d.method not in METHODS or student is None or teacher is None:
        return []
    cls = METHODS.get(d.method)
    if not cls.uses_teacher or not (cls.feature_names or cls.uses_hint_layers):
        return []
    method = create_method(d.method, d.temperature, d.student_layer, d.teacher_layer, d.params)
    problems = []
    for section, model in (("student", student), ("teacher", teacher)):
        layers = model.feature_layers()
        for name in cls.feature_names:
            if name not in layers:
                problems.append(
                    f"{section}.arch: method '{d.method}' needs the '{name}' layer, which this "
                    f"{model.arch} does not have (it has: {', '.join(layers) or 'none'}); "
                    "give it at least one hidden layer")
    if problems:
        return problems
    student_shapes = _feature_shapes(student, method.student_feature_names())
    teacher_shapes = _feature_shapes(teacher, method.teacher_feature_names())
    return method.feature_problems(student_shapes, teacher_shapes)
