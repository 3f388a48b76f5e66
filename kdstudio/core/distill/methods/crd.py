"""Contrastive representation distillation (Tian et al. 2020), with its memory bank."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kdstudio.core.distill import losses
from kdstudio.core.distill.methods import EMBEDDING, ParamSpec, StepOutputs, register_method
from kdstudio.core.distill.methods._common import FeatureMethod
from kdstudio.core.distill.precision import to_device


class ContrastiveMemory(nn.Module):
    """CRD's trainable embedding heads and its two memory banks (one row per training example).

    Student and teacher embeddings are projected to `feat_dim` and L2-normalised (`v_s`, `v_t`).
    For each example i the positive pair is (v_s[i], bank_t[i]) and the K negatives are rows
    of the teacher bank drawn uniformly; symmetrically for v_t against the student bank.
    Scores are `exp(v . m / tau) / Z`, with Z estimated once on the first batch as the paper's
    code does. After each step the banks move towards the new embeddings with `momentum`.
    The banks are buffers: they follow the module to its device and get no gradient.
    """

    def __init__(self, student_dim: int, teacher_dim: int, feat_dim: int, num_data: int,
                 negatives: int, temperature: float, momentum: float, seed: int = 0) -> None:
        super().__init__()
        self.embed_student = nn.Linear(student_dim, feat_dim)
        self.embed_teacher = nn.Linear(teacher_dim, feat_dim)
        self.num_data = num_data
        self.negatives = negatives
        self.temperature = temperature
        self.momentum = momentum
        self.generator = torch.Generator().manual_seed(seed)
        bound = 1.0 / math.sqrt(feat_dim / 3)
        for name in ("bank_student", "bank_teacher"):
            init = torch.rand(num_data, feat_dim, generator=self.generator) * 2 * bound - bound
            self.register_buffer(name, init)
        self.register_buffer("z_student", torch.tensor(-1.0))
        self.register_buffer("z_teacher", torch.tensor(-1.0))
        self._pending: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._z_checked = False  # the constants were read once: no read-back per step

    def _scores(self, embedding: torch.Tensor, bank: torch.Tensor, contrast: torch.Tensor,
                z: torch.Tensor) -> torch.Tensor:
        if self.num_data <= 16 * contrast.shape[1]:
            # a bank of moderate size: one matrix product with all of it, then pick the
            # columns; much cheaper than gathering B x (1 + K) rows of D values
            dots = (embedding @ bank.t()).gather(1, contrast)
        else:
            dots = (bank[contrast] @ embedding[:, :, None]).squeeze(2)  # rows (B, 1 + K, D)
        scores = torch.exp(dots / self.temperature)
        if not self._z_checked and z.item() < 0:  # the normalising constant, estimated once
            z.fill_(scores.mean().item() * self.num_data)
        return scores / z

    @torch.no_grad()
    def apply_updates(self) -> None:
        """Move the banks' rows of the last batch towards its embeddings. Deferred to the next
        forward pass, so the banks do not change between a loss and its backward pass (the
        scores of a batch use the banks from before it, as in the paper's code)."""
        for bank, indices, embedding in self._pending:
            moved = bank[indices] * self.momentum + embedding * (1 - self.momentum)
            bank.index_copy_(0, indices, F.normalize(moved, dim=1))
        self._pending = []

    def forward(self, student: torch.Tensor, teacher: torch.Tensor,
                indices: torch.Tensor) -> torch.Tensor:
        """The CRD loss of a batch: NCE on student-vs-teacher-bank plus teacher-vs-student-bank."""
        self.apply_updates()
        with torch.autocast(device_type=student.device.type, enabled=False):
            v_s = F.normalize(self.embed_student(student.flatten(1).float()), dim=1)
            v_t = F.normalize(self.embed_teacher(teacher.detach().flatten(1).float()), dim=1)
            contrast = torch.randint(self.num_data, (len(indices), self.negatives + 1),
                                     generator=self.generator)
            contrast = to_device(contrast, indices.device)  # a CUDA copy that does not wait
            contrast[:, 0] = indices
            scores_s = self._scores(v_s, self.bank_teacher, contrast, self.z_student)
            scores_t = self._scores(v_t, self.bank_student, contrast, self.z_teacher)
            loss = (losses.crd_nce_loss(scores_s, self.num_data)
                    + losses.crd_nce_loss(scores_t, self.num_data))
        self._z_checked = True
        self._pending = [(self.bank_student, indices, v_s.detach()),
                         (self.bank_teacher, indices, v_t.detach())]
        return loss


@register_method("crd")
class ContrastiveRD(FeatureMethod):
    """`feature_weight * (NCE(v_s, bank_t) + NCE(v_t, bank_s))` on projected embeddings with a
    memory bank of every training example; plus the CE (and optional KD) terms."""

    label = "CRD (Tian 2020)"
    feature_names = (EMBEDDING,)
    params = (
        ParamSpec("feat_dim", 128, 2, 4096, "width of the projected embeddings (paper: 128)",
                  integer=True),
        ParamSpec("negatives", 4096, 1, 65536,
                  "negatives per example, drawn from the memory bank (paper: 16384); at most "
                  "the training-set size - 1", integer=True),
        ParamSpec("nce_temperature", 0.07, 0.001, 10.0,
                  "tau in exp(v . m / tau) (paper: 0.07)"),
        ParamSpec("momentum", 0.5, 0.0, 0.999,
                  "memory-bank update: m <- momentum * m + (1 - momentum) * v (paper: 0.5)"),
    )
    suggested = {"ce_weight": 1.0, "kd_weight": 0.0, "feature_weight": 0.8}

    def build_adapters(
        self, student_features: dict[str, torch.Tensor], teacher_features: dict[str, torch.Tensor],
        num_samples: int = 0,
    ) -> nn.Module:
        if num_samples < 2:
            raise ValueError("CRD needs at least 2 training examples for its memory bank")
        student_dim = student_features[EMBEDDING].flatten(1).shape[1]
        teacher_dim = teacher_features[EMBEDDING].flatten(1).shape[1]
        seed = int(torch.randint(2**31 - 1, (1,)).item())
        return ContrastiveMemory(
            student_dim, teacher_dim, int(self.values["feat_dim"]), num_samples,
            min(int(self.values["negatives"]), num_samples - 1),
            float(self.values["nce_temperature"]), float(self.values["momentum"]), seed)

    def feature_loss(self, student: torch.Tensor, teacher: torch.Tensor,
                     out: StepOutputs, adapters: nn.Module | None) -> torch.Tensor:
        if adapters is None or out.indices is None:
            raise ValueError("CRD needs its memory bank and the batch's sample indices")
        return adapters(student, teacher, out.indices)
