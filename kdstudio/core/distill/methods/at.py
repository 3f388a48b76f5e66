"""Attention transfer (Zagoruyko & Komodakis 2017)."""

from __future__ import annotations

import torch
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import (
    ParamSpec,
    Shapes,
    StepOutputs,
    map_problem,
    register_method,
)
from kdstudio.core.distill.methods._common import FeatureMethod


@register_method("at")
class AttentionTransfer(FeatureMethod):
    """`feature_weight * mean (a(f_s) - a(f_t))^2` on the hint layers, where `a(f)` is the
    L2-normalised map `mean_c |f_c|^p`; plus the CE (and optional KD) terms."""

    label = "AT (Zagoruyko 2017)"
    uses_hint_layers = True
    params = (ParamSpec("p", 2.0, 1.0, 4.0,
                        "exponent of the attention map mean_c |f_c|^p (the paper uses 2)"),)
    # papers' code: 1000, for maps of 8x8 to 32x32 positions; the loss is a mean over
    # positions, so it is larger on small maps: this brings it near the CE at the start
    suggested = {"ce_weight": 1.0, "kd_weight": 0.0, "feature_weight": 100.0}

    def feature_problems(self, student_shapes: Shapes, teacher_shapes: Shapes) -> list[str]:
        return (map_problem(self, student_shapes, self.student_layer, "student_layer")
                + map_problem(self, teacher_shapes, self.teacher_layer, "teacher_layer"))

    def feature_loss(self, student: torch.Tensor, teacher: torch.Tensor,
                     out: StepOutputs, adapters: nn.Module | None) -> torch.Tensor:
        return losses.at_loss(student, teacher, p=float(self.values["p"]))
