"""Distillation method registry. A method says which loss parts it produces, which features
and trainable adapters it needs, and which parameters it takes (for the form and the config).

The engine combines parts as `sum(weight[part] * value)`, with the weights `ce_weight`,
`kd_weight` and `feature_weight` of the `[distill]` config section.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.registry import Registry

WEIGHT_KEYS = {"ce": "ce_weight", "kd": "kd_weight", "feature": "feature_weight"}


@dataclass(frozen=True)
class ParamSpec:
    """One method-specific parameter: the form shows it, the config validates it."""

    name: str
    default: float
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""


@dataclass
class StepOutputs:
    """What one training step hands a method."""

    student_logits: torch.Tensor
    targets: torch.Tensor
    teacher_logits: torch.Tensor | None = None
    student_features: dict[str, torch.Tensor] = field(default_factory=dict)
    teacher_features: dict[str, torch.Tensor] = field(default_factory=dict)


class Method(ABC):
    """Base class of registered distillation methods."""

    label: ClassVar[str] = ""
    uses_teacher: ClassVar[bool] = True
    uses_hint_layers: ClassVar[bool] = False
    parts: ClassVar[tuple[str, ...]] = ("ce",)
    params: ClassVar[tuple[ParamSpec, ...]] = ()

    def __init__(self, temperature: float, student_layer: str = "", teacher_layer: str = "",
                 params: dict[str, Any] | None = None) -> None:
        self.temperature = temperature
        self.student_layer = student_layer
        self.teacher_layer = teacher_layer
        self.values = {spec.name: spec.default for spec in self.params} | dict(params or {})

    def student_feature_names(self) -> list[str]:
        return [self.student_layer] if self.uses_hint_layers else []

    def teacher_feature_names(self) -> list[str]:
        return [self.teacher_layer] if self.uses_hint_layers else []

    def build_adapters(
        self, student_features: dict[str, torch.Tensor], teacher_features: dict[str, torch.Tensor]
    ) -> nn.Module | None:
        """Trainable modules the method needs (trained with the student, never exported).

        Called once with features of a sample batch, so adapters can size themselves.
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


@register_method("none")
class StudentAlone(Method):
    """The student trained on the labels alone: `ce_weight * CE(s, y)`."""

    label = "None (student alone)"
    uses_teacher = False
    parts = ("ce",)

    def loss_parts(self, out: StepOutputs, adapters: nn.Module | None) -> dict[str, torch.Tensor]:
        return {"ce": losses.ce_loss(out.student_logits, out.targets)}


@register_method("kd")
class HintonKD(Method):
    """Hinton et al. 2015: `ce_weight * CE(s, y) + kd_weight * T^2 * KL(p_t^T || p_s^T)`."""

    label = "KD (Hinton 2015)"
    parts = ("ce", "kd")

    def loss_parts(self, out: StepOutputs, adapters: nn.Module | None) -> dict[str, torch.Tensor]:
        assert out.teacher_logits is not None
        return {
            "ce": losses.ce_loss(out.student_logits, out.targets),
            "kd": losses.kd_loss(out.student_logits, out.teacher_logits, self.temperature),
        }


class HintRegressor(nn.Module):
    """Maps a student feature to the teacher feature's shape (FitNets' regressor `r`).

    Feature maps of the same kind (both (N, C, L) or both (N, C, H, W)) get a 1x1
    convolution, then adaptive average pooling if the spatial sizes differ; anything else
    is flattened and mapped by a linear layer.
    """

    def __init__(self, student_shape: tuple[int, ...], teacher_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.teacher_shape = teacher_shape
        same_kind = len(student_shape) == len(teacher_shape) and len(student_shape) in (2, 3)
        self.convolutional = same_kind
        if len(student_shape) == 2:
            self.map: nn.Module = nn.Conv1d(student_shape[0], teacher_shape[0], 1)
        if same_kind and len(student_shape) == 3:
            self.map = nn.Conv2d(student_shape[0], teacher_shape[0], 1)
        if not same_kind:
            self.map = nn.Linear(math.prod(student_shape), math.prod(teacher_shape))

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        if not self.convolutional:
            return self.map(feature.flatten(1)).view(len(feature), *self.teacher_shape)
        mapped = self.map(feature)
        spatial = self.teacher_shape[1:]
        if tuple(mapped.shape[2:]) != spatial:
            pool = F.adaptive_avg_pool1d if len(spatial) == 1 else F.adaptive_avg_pool2d
            mapped = pool(mapped, spatial)
        return mapped


@register_method("fitnets")
class FitNets(Method):
    """Romero et al. 2015: Hinton's loss plus `feature_weight * MSE(r(f_s), f_t)`."""

    label = "FitNets (Romero 2015)"
    uses_hint_layers = True
    parts = ("ce", "kd", "feature")

    def build_adapters(
        self, student_features: dict[str, torch.Tensor], teacher_features: dict[str, torch.Tensor]
    ) -> nn.Module:
        student_shape = tuple(student_features[self.student_layer].shape[1:])
        teacher_shape = tuple(teacher_features[self.teacher_layer].shape[1:])
        return HintRegressor(student_shape, teacher_shape)

    def loss_parts(self, out: StepOutputs, adapters: nn.Module | None) -> dict[str, torch.Tensor]:
        assert out.teacher_logits is not None and adapters is not None
        guided = adapters(out.student_features[self.student_layer])
        return {
            "ce": losses.ce_loss(out.student_logits, out.targets),
            "kd": losses.kd_loss(out.student_logits, out.teacher_logits, self.temperature),
            "feature": losses.hint_loss(guided, out.teacher_features[self.teacher_layer]),
        }
