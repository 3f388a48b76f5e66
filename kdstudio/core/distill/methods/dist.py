"""DIST: distillation by Pearson correlation (Huang et al. 2022)."""

from __future__ import annotations

import torch
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import Method, ParamSpec, StepOutputs, register_method


@register_method("dist")
class DIST(Method):
    """`ce_weight * CE + kd_weight * T^2 (beta * inter + gamma * intra)`, where inter and intra
    are 1 - the mean Pearson correlation of softmax(z/T) across classes and across the batch."""

    label = "DIST (Huang 2022)"
    uses_temperature = True
    parts = ("ce", "kd")
    params = (
        ParamSpec("beta", 1.0, 0.0, 100.0, "weight of the inter-class relation (per example)"),
        ParamSpec("gamma", 1.0, 0.0, 100.0, "weight of the intra-class relation (per class)"),
    )
    suggested = {"temperature": 1.0, "ce_weight": 1.0, "kd_weight": 1.0}

    def loss_parts(self, out: StepOutputs, adapters: nn.Module | None) -> dict[str, torch.Tensor]:
        assert out.teacher_logits is not None
        return {
            "ce": losses.ce_loss(out.student_logits, out.targets),
            "kd": losses.dist_loss(out.student_logits, out.teacher_logits,
                                   float(self.values["beta"]), float(self.values["gamma"]),
                                   self.temperature),
        }
