"""KD with logit standardisation (Sun et al. 2024)."""

from __future__ import annotations

import torch

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import register_method
from kdstudio.core.distill.methods.kd import HintonKD


@register_method("lskd")
class LogitStandardisedKD(HintonKD):
    """`ce_weight * CE + kd_weight * T^2 KL(softmax(Z(t)/T) || softmax(Z(s)/T))`, where `Z`
    z-scores each logit vector, so the student matches the teacher's logit relations rather
    than their scale."""

    label = "LS-KD (Sun 2024)"
    suggested = {"temperature": 2.0, "ce_weight": 0.1, "kd_weight": 9.0}

    def kd_term(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        return losses.ls_kd_loss(student_logits, teacher_logits, self.temperature)
