"""Shared base of the feature-based methods: CE + Hinton KD + one feature term."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import EMBEDDING, Method, Shapes, StepOutputs, map_problem


class FeatureMethod(Method):
    """`ce_weight * CE + kd_weight * KD_T + feature_weight * feature_loss(f_s, f_t)`.

    The feature pair is the user's hint layers (`uses_hint_layers`) or else the models'
    embeddings. Set `kd_weight = 0` for the feature term alone, as the papers do.
    """

    uses_temperature = True
    parts = ("ce", "kd", "feature")

    def feature_keys(self) -> tuple[str, str]:
        if self.uses_hint_layers:
            return self.student_layer, self.teacher_layer
        return EMBEDDING, EMBEDDING

    @abstractmethod
    def feature_loss(self, student: torch.Tensor, teacher: torch.Tensor,
                     out: StepOutputs, adapters: nn.Module | None) -> torch.Tensor:
        """The unweighted feature term for one batch."""

    def loss_parts(self, out: StepOutputs, adapters: nn.Module | None) -> dict[str, torch.Tensor]:
        assert out.teacher_logits is not None
        student_key, teacher_key = self.feature_keys()
        return {
            "ce": losses.ce_loss(out.student_logits, out.targets),
            "kd": losses.kd_loss(out.student_logits, out.teacher_logits, self.temperature),
            "feature": self.feature_loss(out.student_features[student_key],
                                         out.teacher_features[teacher_key], out, adapters),
        }


class MapFeatureMethod(FeatureMethod):
    """A feature method on the hint layers that needs convolutional maps from both models."""

    uses_hint_layers = True

    def feature_problems(self, student_shapes: Shapes, teacher_shapes: Shapes) -> list[str]:
        return (map_problem(self, student_shapes, self.student_layer, "student_layer")
                + map_problem(self, teacher_shapes, self.teacher_layer, "teacher_layer"))
