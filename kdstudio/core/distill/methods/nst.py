"""Neuron selectivity transfer (Huang & Wang 2017)."""

from __future__ import annotations

import torch
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import StepOutputs, register_method
from kdstudio.core.distill.methods._common import MapFeatureMethod


@register_method("nst")
class NeuronSelectivityTransfer(MapFeatureMethod):
    """`feature_weight * MMD^2` (polynomial kernel of degree 2) between the channels of the
    hint layers' maps; plus the CE (and optional KD) terms."""

    label = "NST (Huang 2017)"
    # papers' code: 50, for maps of 8x8 to 32x32 positions; the loss is a mean over
    # positions, so it is larger on small maps: this brings it near the CE at the start
    suggested = {"ce_weight": 1.0, "kd_weight": 0.0, "feature_weight": 10.0}

    def feature_loss(self, student: torch.Tensor, teacher: torch.Tensor,
                     out: StepOutputs, adapters: nn.Module | None) -> torch.Tensor:
        return losses.nst_loss(student, teacher)
