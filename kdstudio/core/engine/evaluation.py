"""Predictions, validation figures and accuracy: everything that runs a model without
training it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from kdstudio.core.data.examples import Examples
from kdstudio.core.distill.precision import to_device

EVAL_BATCH = 1024


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor | Examples, device: torch.device
            ) -> torch.Tensor:
    """Logits for all of `x` (a tensor, or inputs read from files), in eval mode, on the
    CPU."""
    was_training = model.training
    model.eval()
    chunks = x.split(EVAL_BATCH) if isinstance(x, torch.Tensor) else x.chunks(EVAL_BATCH)
    # the chunks' logits stay on the device and come back in one copy: one wait for it
    out = [model(to_device(chunk, device)).float() for chunk in chunks]
    model.train(was_training)
    if not out:
        return torch.empty(0)
    return (out[0] if len(out) == 1 else torch.cat(out)).cpu()


def top_class(logits: torch.Tensor) -> torch.Tensor:
    """`logits.argmax(1)` (the first of equal maxima, as argmax): `max(1)`'s indices, which
    the CPU reduces faster than argmax for any number of classes."""
    return logits.max(1).indices


def log_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """`log_softmax(logits, 1)` in float32, as `x - logsumexp(x)`: the same values to float
    rounding, and faster on the CPU for class counts that are not a multiple of
    log_softmax's vector width (10, say)."""
    logits = logits.float()
    return logits - torch.logsumexp(logits, 1, keepdim=True)


@dataclass(frozen=True)
class TeacherReference:
    """The teacher's predictions on a split, worked out once per run: what each epoch's
    agreement and KL compare the student with."""

    log_probs: torch.Tensor  # log softmax(t) at T = 1
    probs: torch.Tensor
    predictions: torch.Tensor

    @classmethod
    def of(cls, logits: torch.Tensor) -> TeacherReference:
        log_probs = log_probabilities(logits)
        return cls(log_probs, log_probs.exp(), top_class(logits))


def validation_metrics(logits: torch.Tensor, y: torch.Tensor,
                       teacher: TeacherReference | None = None) -> dict[str, float]:
    """val/loss (cross-entropy), val/acc and, against the teacher, val/agreement (same top-1
    class) and val/kl (`KL(softmax(t) || softmax(s))`, batch-averaged): one log-softmax
    and one argmax of the student's logits for all four."""
    n = len(y)
    if n == 0:
        return {"val/loss": float("nan"), "val/acc": float("nan")}
    log_probs = log_probabilities(logits)
    predictions = top_class(logits)
    # counts are read as float64 (exact) and divided here, as Python floats
    figures = [torch.nn.functional.nll_loss(log_probs, y), (predictions == y).sum()]
    if teacher is not None:
        figures.append((predictions == teacher.predictions).sum())
        figures.append((teacher.probs * (teacher.log_probs - log_probs)).sum() / n)
    read = torch.stack([value.double() for value in figures]).tolist()  # one read-back
    values = {"val/loss": read[0], "val/acc": read[1] / n}
    if teacher is not None:
        values["val/agreement"] = read[2] / n
        values["val/kl"] = read[3]
    return values


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return (top_class(logits) == y).float().mean().item() if len(y) else float("nan")
