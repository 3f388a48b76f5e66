"""Probabilistic knowledge transfer (Passalis & Tefas 2018)."""

from __future__ import annotations

import torch
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import EMBEDDING, StepOutputs, register_method
from kdstudio.core.distill.methods._common import FeatureMethod


@register_method("pkt")
class ProbabilisticKT(FeatureMethod):
    """`feature_weight * KL(P_t || P_s)` between the cosine-kernel conditional probabilities of
    the embeddings within a batch; plus the CE (and optional KD) terms."""

    label = "PKT (Passalis 2018)"
    feature_names = (EMBEDDING,)
    suggested = {"ce_weight": 1.0, "kd_weight": 0.0, "feature_weight": 30000.0}

    def feature_loss(self, student: torch.Tensor, teacher: torch.Tensor,
                     out: StepOutputs, adapters: nn.Module | None) -> torch.Tensor:
        return losses.pkt_loss(student, teacher)
