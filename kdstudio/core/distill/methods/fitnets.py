"""FitNets hints, with the regressor that maps the student's layer to the teacher's."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import Method, StepOutputs, register_method


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
    uses_temperature = True
    parts = ("ce", "kd", "feature")
    suggested = {"temperature": 4.0, "ce_weight": 0.5, "kd_weight": 0.5, "feature_weight": 1.0}

    def build_adapters(
        self, student_features: dict[str, torch.Tensor], teacher_features: dict[str, torch.Tensor],
        num_samples: int = 0,
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
