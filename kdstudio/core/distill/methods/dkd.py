"""Decoupled knowledge distillation (Zhao et al. 2022)."""

from __future__ import annotations

import torch
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import Method, ParamSpec, StepOutputs, register_method


@register_method("dkd")
class DecoupledKD(Method):
    """`ce_weight * CE + kd_weight * (alpha * TCKD + beta * NCKD)`, each KL T^2-scaled. The
    paper warms the KD part up over its first 20 epochs: a warm-up schedule of `kd_weight`."""

    label = "DKD (Zhao 2022)"
    uses_temperature = True
    parts = ("ce", "kd")
    params = (
        ParamSpec("alpha", 1.0, 0.0, 100.0, "weight of the target-class term TCKD (paper: 1)"),
        ParamSpec("beta", 2.0, 0.0, 100.0,
                  "weight of the non-target-class term NCKD (paper: 8 on CIFAR-100, 0.5 on "
                  "ImageNet; 8 made SGD diverge on MNIST-1D here, 2 worked)"),
    )
    suggested = {"temperature": 4.0, "ce_weight": 1.0, "kd_weight": 1.0}

    def loss_parts(self, out: StepOutputs, adapters: nn.Module | None) -> dict[str, torch.Tensor]:
        assert out.teacher_logits is not None
        return {
            "ce": losses.ce_loss(out.student_logits, out.targets),
            "kd": losses.dkd_loss(out.student_logits, out.teacher_logits, out.targets,
                                  float(self.values["alpha"]), float(self.values["beta"]),
                                  self.temperature),
        }
