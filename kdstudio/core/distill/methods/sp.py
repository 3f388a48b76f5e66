"""Similarity-preserving KD (Tung & Mori 2019)."""

from __future__ import annotations

import torch
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import StepOutputs, register_method
from kdstudio.core.distill.methods._common import FeatureMethod


@register_method("sp")
class SimilarityPreserving(FeatureMethod):
    """`feature_weight * ||G_t - G_s||_F^2 / B^2` with row-normalised batch Gram matrices of the
    hint layers (any shapes); plus the CE (and optional KD) terms."""

    label = "SP (Tung 2019)"
    uses_hint_layers = True
    suggested = {"ce_weight": 1.0, "kd_weight": 0.0, "feature_weight": 3000.0}

    def feature_loss(self, student: torch.Tensor, teacher: torch.Tensor,
                     out: StepOutputs, adapters: nn.Module | None) -> torch.Tensor:
        return losses.sp_loss(student, teacher)
