"""The student trained on the labels alone."""

from __future__ import annotations

import torch
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import Method, StepOutputs, register_method


@register_method("none")
class StudentAlone(Method):
    """The student trained on the labels alone: `CE(s, y)`, as a run's baseline phase
    (`ce_weight` is not used: with one term it would only rescale the learning rate)."""

    label = "None (student alone)"
    uses_teacher = False
    parts = ("ce",)

    def loss_parts(self, out: StepOutputs, adapters: nn.Module | None) -> dict[str, torch.Tensor]:
        return {"ce": losses.ce_loss(out.student_logits, out.targets)}
