"""Checks of the `[distill]` section that need the method registry or built models; called by
`config.validate`. Each problem is one line starting with its key path."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class ModelSummary:
    """What validation needs of a model: its architecture, its feature layers, the shape
    of each layer's output per example (no batch dimension) and the shape of its output."""

    arch: str
    layers: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]] = field(hash=False)
    output: tuple[int, ...] = ()


def summarise_model(arch: str, params: dict[str, Any], input_shape: tuple[int, ...],
                    num_classes: int) -> ModelSummary:
    """Build the model and run two inputs through it, recording every feature layer.
    Raises ValueError, TypeError or RuntimeError for bad parameters.

    Remembered by its arguments (the last 32): the GUI checks the whole config after every
    edit, and a ResNet should not be rebuilt because the learning rate changed.
    """
    key = json.dumps([arch, params, list(input_shape), num_classes], sort_keys=True,
                     default=repr)
    with _SUMMARIES_LOCK:  # the GUI thread and a run's thread may both validate
        if key in _SUMMARIES:
            _SUMMARIES.move_to_end(key)
            return _SUMMARIES[key]
    from kdstudio.core.models import create_model

    # on the CPU (the meta device would spare the memory, but its first forward pass costs
    # a second of start-up); the global random state is left as it was
    with torch.random.fork_rng(devices=[]):
        model = create_model(arch, tuple(input_shape), num_classes, **params)
    model.eval()
    layers = model.feature_layers()
    with torch.no_grad(), FeatureRecorder(layers, layers) as recorder:
        out = model(torch.zeros(2, *input_shape))
        shapes = {name: tuple(value.shape[1:]) for name, value in recorder.features.items()
                  if isinstance(value, torch.Tensor)}
    output = tuple(out.shape) if isinstance(out, torch.Tensor) else ()
    summary = ModelSummary(model.arch, tuple(layers), shapes, output)
    with _SUMMARIES_LOCK:
        _SUMMARIES[key] = summary
        while len(_SUMMARIES) > 32:
            _SUMMARIES.popitem(last=False)
    return summary


_SUMMARIES: OrderedDict[str, ModelSummary] = OrderedDict()
_SUMMARIES_LOCK = threading.Lock()


def feature_problems(config: Any, student: ModelSummary | None,
                     teacher: ModelSummary | None) -> list[str]:
    """The method's fixed feature layers (e.g. 'embedding') exist in both models and the
    features have the shapes it needs."""
    d = config.distill
    if d.method not in METHODS or student is None or teacher is None:
        return []
    cls = METHODS.get(d.method)
    if not cls.uses_teacher or not (cls.feature_names or cls.uses_hint_layers):
        return []
    method = create_method(d.method, d.temperature, d.student_layer, d.teacher_layer, d.params)
    problems = []
    for section, model in (("student", student), ("teacher", teacher)):
        layers = model.layers
        for name in cls.feature_names:
            if name not in layers:
                problems.append(
                    f"{section}.arch: method '{d.method}' needs the '{name}' layer, which this "
                    f"{model.arch} does not have (it has: {', '.join(layers) or 'none'}); "
                    "give it at least one hidden layer")
    if problems:
        return problems
    student_shapes = {name: student.shapes[name] for name in method.student_feature_names()
                      if name in student.shapes}
    teacher_shapes = {name: teacher.shapes[name] for name in method.teacher_feature_names()
                      if name in teacher.shapes}
    return method.feature_problems(student_shapes, teacher_shapes)
