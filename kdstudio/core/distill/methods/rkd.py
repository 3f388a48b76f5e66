"""Relational knowledge distillation (Park et al. 2019)."""

from __future__ import annotations

import torch
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import EMBEDDING, ParamSpec, StepOutputs, register_method
from kdstudio.core.distill.methods._common import FeatureMethod


@register_method("rkd")
class RelationalKD(FeatureMethod):
    """`feature_weight * (w_d * distance + w_a * angle)` on the embeddings: smooth-L1 between
    the normalised pairwise distances and the triplet angles of student and teacher."""

    label = "RKD (Park 2019)"
    feature_names = (EMBEDDING,)
    params = (
        ParamSpec("distance_weight", 25.0, 0.0, 1000.0,
                  "w_d: weight of the distance term (the paper uses 25)"),
        ParamSpec("angle_weight", 50.0, 0.0, 1000.0,
                  "w_a: weight of the angle term (the paper uses 50)"),
    )
    suggested = {"ce_weight": 1.0, "kd_weight": 0.0, "feature_weight": 1.0}

    def feature_loss(self, student: torch.Tensor, teacher: torch.Tensor,
                     out: StepOutputs, adapters: nn.Module | None) -> torch.Tensor:
        return losses.rkd_loss(student, teacher, float(self.values["distance_weight"]),
                               float(self.values["angle_weight"]))
