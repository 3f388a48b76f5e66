"""Distillation method registry. A method says which loss parts it produces, which features
and trainable adapters it needs, and which parameters it takes (for the form and the config).

The engine combines parts as `sum(weight[part] * value)`, with the weights `ce_weight`,
`kd_weight` and `feature_weight` of the `[distill]` config section (each may follow a
schedule). One file per method in this package; each registers itself with
`@register_method("name")` and is imported below.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from kdstudio.core.registry import Registry, import_submodules

WEIGHT_KEYS = {"ce": "ce_weight", "kd": "kd_weight", "feature": "feature_weight"}
EMBEDDING = "embedding"  # the feature layer every model has: the representation before the head

__all__ = [
    "EMBEDDING",
    "METHODS",
    "WEIGHT_KEYS",
    "Method",
    "ParamSpec",
    "StepOutputs",
    "create_method",
    "list_methods",
    "register_method",
]


@dataclass(frozen=True)
class ParamSpec:
    """One method-specific parameter: the form shows it, the config validates it."""

    name: str
    default: float
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""
    integer: bool = False


@dataclass
class StepOutputs:
    """What one training step hands a method.

    `indices` are the positions of the batch's examples in the training set (CRD's memory
    bank is addressed by them).
    """

    student_logits: torch.Tensor
    targets: torch.Tensor
    teacher_logits: torch.Tensor | None = None
    student_features: dict[str, torch.Tensor] = field(default_factory=dict)
    teacher_features: dict[str, torch.Tensor] = field(default_factory=dict)
    indices: torch.Tensor | None = None


Shapes = dict[str, tuple[int, ...]]


class Method(ABC):
    """Base class of registered distillation methods.

    Class attributes describe the method to the engine, the config and the form:
    `parts` (loss parts produced, keys of WEIGHT_KEYS), `params` (ParamSpec per parameter),
    `uses_teacher`, `uses_hint_layers` (the user picks one student and one teacher layer),
    `feature_names` (fixed feature layers needed from both models, e.g. 'embedding'),
    `uses_temperature` (whether distill.temperature matters) and `suggested` (sensible
    `[distill]` values for a form to offer when the method is picked).
    """

    label: ClassVar[str] = ""
    uses_teacher: ClassVar[bool] = True
    uses_hint_layers: ClassVar[bool] = False
    uses_temperature: ClassVar[bool] = False
    feature_names: ClassVar[tuple[str, ...]] = ()
    parts: ClassVar[tuple[str, ...]] = ("ce",)
    params: ClassVar[tuple[ParamSpec, ...]] = ()
    suggested: ClassVar[dict[str, float]] = {}

    def __init__(self, temperature: float, student_layer: str = "", teacher_layer: str = "",
                 params: dict[str, Any] | None = None) -> None:
        self.temperature = temperature
        self.student_layer = student_layer
        self.teacher_layer = teacher_layer
        self.values = {spec.name: spec.default for spec in self.params} | dict(params or {})

    def student_feature_names(self) -> list[str]:
        names = [self.student_layer] if self.uses_hint_layers else []
        return list(dict.fromkeys(names + list(self.feature_names)))

    def teacher_feature_names(self) -> list[str]:
        names = [self.teacher_layer] if self.uses_hint_layers else []
        return list(dict.fromkeys(names + list(self.feature_names)))

    def feature_problems(self, student_shapes: Shapes, teacher_shapes: Shapes) -> list[str]:
        """Problems with the feature shapes (per example, no batch dimension), one line each,
        starting with the config key they concern; checked before a run starts."""
        return []

    def build_adapters(
        self, student_features: dict[str, torch.Tensor], teacher_features: dict[str, torch.Tensor],
        num_samples: int = 0,
    ) -> nn.Module | None:
        """Trainable modules the method needs (trained with the student, never exported).

        Called once with features of a sample batch, so adapters can size themselves;
        `num_samples` is the size of the training set.
        """
        return None

    @abstractmethod
    def loss_parts(self, out: StepOutputs, adapters: nn.Module | None) -> dict[str, torch.Tensor]:
        """Unweighted loss parts, keyed by 'ce', 'kd' or 'feature'."""


METHODS: Registry[type[Method]] = Registry("method")
register_method = METHODS.register


def list_methods() -> list[str]:
    return METHODS.names()


def create_method(name: str, temperature: float, student_layer: str = "",
                  teacher_layer: str = "", params: dict[str, Any] | None = None) -> Method:
    return METHODS.get(name)(temperature, student_layer, teacher_layer, params)


def map_problem(method: Method, shapes: Shapes, layer: str, key: str) -> list[str]:
    """A one-line problem when the feature `layer` is not a convolutional map (C, ...)."""
    shape = shapes.get(layer)
    if shape is not None and len(shape) < 2:
        return [f"distill.{key}: method '{method.label}' needs a convolutional feature map "
                f"(channels x length or height x width); layer '{layer}' gives a vector of "
                f"{shape[0] if shape else 0} values"]
    return []


import_submodules(__name__)
