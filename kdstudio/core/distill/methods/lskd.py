"""KD with logit standardisation (Sun et al. 2024)."""

from __future__ import annotations

import torch
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import Method, StepOutputs, register_method


@register_method("lskd")
class LogitStandardisedKD(Method):
    """`ce_weight * CE + kd_weight * T^2 KL(softmax(Z(t)/T) || softmax(Z(s)/T))`, where `Z`
    z-scores each logit vector, so the student matches the teacher's logit relations rather
    than their scale."""

    label = "LS-KD (Sun 2024)"
    uses_temperature = True
    parts = ("ce", "kd")
    suggested = {"temperature": 2.0, "ce_weight": 0.1, "kd_weight": 9.0}

    def loss_parts(self, out: StepOutputs, adapters: nn.Module | None) -> dict[str, torch.Tensor]:
        assert out.teacher_logits is not None
        return {
            "ce": losses.ce_loss(out.student_logits, out.targets),
            "kd": losses.ls_kd_loss(out.student_logits, out.teacher_logits, self.temperature),
        }
