"""Attention transfer (Zagoruyko & Komodakis 2017)."""

from __future__ import annotations

import torch
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import ParamSpec, StepOutputs, register_method
from kdstudio.core.distill.methods._common import MapFeatureMethod


@register_method("at")
class AttentionTransfer(MapFeatureMethod):
    """`feature_weight * mean (a(f_s) - a(f_t))^2` on the hint layers, where `a(f)` is the
    L2-normalised map `mean_c |f_c|^p`; plus the CE (and optional KD) terms.

    Follows RepDistiller (`distiller_zoo/AT.py`) and mdistiller (`distillers/AT.py`): when the
    maps differ in spatial size, the larger feature map is adaptively average-pooled to the
    smaller size before its attention map is taken.
    """

    label = "AT (Zagoruyko 2017)"
    params = (ParamSpec("p", 2.0, 1.0, 4.0,
                        "exponent of the attention map mean_c |f_c|^p (the paper uses 2)"),)
    # papers' code: 1000, for maps of 8x8 to 32x32 positions; the loss is a mean over
    # positions, so it is larger on small maps: this brings it near the CE at the start
    suggested = {"ce_weight": 1.0, "kd_weight": 0.0, "feature_weight": 100.0}

    def feature_loss(self, student: torch.Tensor, teacher: torch.Tensor,
                     out: StepOutputs, adapters: nn.Module | None) -> torch.Tensor:
        return losses.at_loss(student, teacher, p=float(self.values["p"]))
