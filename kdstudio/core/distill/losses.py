"""Distillation losses as pure functions of tensors. Each returns a batch-averaged scalar."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ce_loss(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the hard labels: `mean_i -log softmax(s_i)[y_i]`."""
    return F.cross_entropy(student_logits, targets)


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Soft-target term of Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural
    Network": `T^2 * KL(softmax(t/T) || softmax(s/T))`, summed over classes, averaged over the
    batch ("batchmean").

    The T^2 factor keeps the gradient scale independent of T (the paper, section 2), so the
    full Hinton loss is `ce_weight * ce_loss + kd_weight * kd_loss`.
    """
    log_p_student = F.log_softmax(student_logits / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def hint_loss(student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
    """FitNets hint loss (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets"):
    `mean((r(f_s) - f_t)^2)`, where the caller has already passed the student's guided layer
    through the regressor `r` so that the shapes match.
    """
    if student_feature.shape != teacher_feature.shape:
        raise ValueError(
            f"hint shapes differ: student {tuple(student_feature.shape)}, "
            f"teacher {tuple(teacher_feature.shape)}"
        )
    return F.mse_loss(student_feature, teacher_feature)


def agreement(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> float:
    """Fraction of examples on which student and teacher predict the same class (top-1)."""
    return (student_logits.argmax(1) == teacher_logits.argmax(1)).float().mean().item()


def kl_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> float:
    """`KL(softmax(t) || softmax(s))` at T = 1, batch-averaged: how far the student is."""
    return kd_loss(student_logits, teacher_logits, 1.0).item()
