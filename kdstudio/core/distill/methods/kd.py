"""Hinton's knowledge distillation."""

from __future__ import annotations

import torch
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import Method, StepOutputs, register_method


@register_method("kd")
class HintonKD(Method):
    """Hinton et al. 2015: `ce_weight * CE(s, y) + kd_weight * T^2 * KL(p_t^T || p_s^T)`."""

    label = "KD (Hinton 2015)"
    uses_temperature = True
    parts = ("ce", "kd")
    suggested = {"temperature": 4.0, "ce_weight": 0.5, "kd_weight": 0.5}

    def kd_term(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """The unweighted logit-matching term."""
        return losses.kd_loss(student_logits, teacher_logits, self.temperature)

    def loss_parts(self, out: StepOutputs, adapters: nn.Module | None) -> dict[str, torch.Tensor]:
        assert out.teacher_logits is not None
        return {
            "ce": losses.ce_loss(out.student_logits, out.targets),
            "kd": self.kd_term(out.student_logits, out.teacher_logits),
        }
