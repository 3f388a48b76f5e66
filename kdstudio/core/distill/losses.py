"""Distillation losses as pure functions of tensors. Each returns a batch-averaged scalar.

Every loss treats its teacher arguments as constants (detached): gradients reach the student
only, even if a caller forgets `torch.no_grad()` around the teacher.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.nn.functional as F

LossFunction = TypeVar("LossFunction", bound=Callable[..., Any])
HALF = (torch.float16, torch.bfloat16)


def _upcast(value: Any) -> Any:
    return value.float() if isinstance(value, torch.Tensor) and value.dtype in HALF else value


# Whether autocast is on for any device type, in one call. Where torch lacks it (it is
# private), True sends every call through the per-device check below.
_any_autocast: Callable[[], bool] = getattr(torch._C, "_is_any_autocast_enabled", lambda: True)


def full_precision(function: LossFunction) -> LossFunction:
    """Under autocast (mixed precision on CUDA), run the loss in float32 on upcast inputs:
    Gram matrices, pairwise distances and exponentials overflow or cancel in half precision.
    Without autocast it calls the function as it is."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _any_autocast():  # the usual case, checked in one call
            return function(*args, **kwargs)
        tensor = next((a for a in args if isinstance(a, torch.Tensor)), None)
        device = tensor.device.type if tensor is not None else "cpu"
        if not torch.is_autocast_enabled(device):
            return function(*args, **kwargs)
        with torch.autocast(device_type=device, enabled=False):
            return function(*map(_upcast, args), **{k: _upcast(v) for k, v in kwargs.items()})

    return wrapper  # type: ignore[return-value]


def ce_loss(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with the hard labels: `mean_i -log softmax(s_i)[y_i]`."""
    return F.cross_entropy(student_logits, targets)


@full_precision
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
    log_p_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


@full_precision
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
    return F.mse_loss(student_feature, teacher_feature.detach())


# ---------------------------------------------------------------- feature-map methods


def _as_maps(feature: torch.Tensor, what: str) -> torch.Tensor:
    """A feature map (B, C, ...) with at least one spatial dimension, else ValueError."""
    if feature.dim() < 3:
        raise ValueError(
            f"{what} needs a convolutional feature map (batch, channels, length or height, "
            f"width); got a tensor of shape {tuple(feature.shape)}"
        )
    return feature


def _pool_to(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Adaptive average pooling of (B, [C,] ...) maps to the spatial `size`, if it differs."""
    if tuple(maps.shape[-len(size):]) == size:
        return maps
    pools = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}
    return pools[len(size)](maps, size)


def _smaller_spatial(a: torch.Tensor, b: torch.Tensor) -> tuple[int, ...]:
    if a.dim() != b.dim():
        raise ValueError(
            f"student and teacher feature maps have different ranks: {tuple(a.shape)} and "
            f"{tuple(b.shape)}"
        )
    return tuple(min(x, y) for x, y in zip(a.shape[2:], b.shape[2:], strict=True))


def attention_map(feature: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Zagoruyko & Komodakis' spatial attention map: `mean_c |f_c|^p` per position, (B, ...)."""
    return feature.abs().pow(p).mean(dim=1)


@full_precision
def at_loss(
    student_feature: torch.Tensor, teacher_feature: torch.Tensor, p: float = 2.0
) -> torch.Tensor:
    """Attention transfer (Zagoruyko & Komodakis 2017, "Paying More Attention to Attention").

    With `a(f) = vec(mean_c |f_c|^p) / ||vec(mean_c |f_c|^p)||_2` (one unit vector per example),
    the loss is `mean_{i,j} (a(f_s)_ij - a(f_t)_ij)^2`, averaged over the batch and the
    positions as in the authors' code. When the spatial sizes differ, the larger feature map
    is average-pooled (adaptively) to the smaller size before its attention map is taken, as
    RepDistiller (`distiller_zoo/AT.py`) and mdistiller (`distillers/AT.py`) do, so values
    compare with their tables; each spatial dimension goes to the smaller of the two (for
    square maps, exactly their pooling). The channel counts may differ.
    """
    student_feature = _as_maps(student_feature, "attention transfer")
    teacher_feature = _as_maps(teacher_feature, "attention transfer").detach()
    size = _smaller_spatial(student_feature, teacher_feature)
    student = attention_map(_pool_to(student_feature, size), p)
    teacher = attention_map(_pool_to(teacher_feature, size), p)
    student = F.normalize(student.flatten(1), dim=1)
    teacher = F.normalize(teacher.flatten(1), dim=1)
    return (student - teacher).pow(2).mean()


def similarity_matrix(feature: torch.Tensor) -> torch.Tensor:
    """Row-normalised Gram matrix of a batch: `G = F F^T`, each row divided by its L2 norm."""
    flat = feature.flatten(1)
    return F.normalize(flat @ flat.t(), dim=1)


@full_precision
def sp_loss(student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
    """Similarity-preserving KD (Tung & Mori 2019): `||G_t - G_s||_F^2 / B^2`.

    `G = F F^T` is the (B, B) Gram matrix of the flattened features of a batch of size B,
    with each row L2-normalised. Any feature shapes work; student and teacher may differ.
    """
    if len(student_feature) != len(teacher_feature):
        raise ValueError("student and teacher batches differ in size")
    batch = len(student_feature)
    diff = similarity_matrix(teacher_feature.detach()) - similarity_matrix(student_feature)
    return diff.pow(2).sum() / batch**2


def pairwise_distances(embedding: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distances between all rows, (B, B), exactly zero on the diagonal."""
    flat = embedding.flatten(1)
    squared = flat.pow(2).sum(1)
    d2 = (squared[:, None] + squared[None, :] - 2 * flat @ flat.t()).clamp(min=eps)
    off_diagonal = 1.0 - torch.eye(len(flat), device=flat.device, dtype=flat.dtype)
    return d2.sqrt() * off_diagonal


def triplet_angles(embedding: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """`cos angle(e_j - e_i, e_k - e_i)` for all (i, j, k), (B, B, B); zero when j or k is i.

    Computed from the Gram matrix G of the batch, centred first (angles do not change with a
    shift, and smaller numbers cancel less): `<e_j - e_i, e_k - e_i> = G_jk - G_ij - G_ik +
    G_ii` and `|e_j - e_i|^2 = G_jj - 2 G_ij + G_ii`. That costs O(B^2 D + B^3) instead of the
    O(B^3 D) of forming all B^2 difference vectors, which matters for wide embeddings.
    """
    flat = embedding.flatten(1)
    flat = flat - flat.mean(dim=0, keepdim=True)
    gram = flat @ flat.t()
    diag = gram.diagonal()
    dots = gram[None, :, :] - gram[:, :, None] - gram[:, None, :] + diag[:, None, None]
    squared = diag[None, :] - 2 * gram + diag[:, None]  # |e_j - e_i|^2 at (i, j)
    apart = squared > eps
    lengths = squared.clamp(min=eps).sqrt() * apart  # no infinite sqrt gradient at 0
    denominator = lengths[:, :, None] * lengths[:, None, :]
    valid = apart[:, :, None] & apart[:, None, :]
    return torch.where(valid, dots / denominator.clamp(min=eps), torch.zeros_like(dots))


def _by_mean_distance(distances: torch.Tensor) -> torch.Tensor:
    """Distances divided by their mean over distinct pairs; unchanged (all zero) when the
    batch has no two distinct examples (a last batch of one), instead of 0 / 0."""
    positive = distances[distances > 0]
    return distances / positive.mean() if positive.numel() else distances


@full_precision
def rkd_loss(
    student_embedding: torch.Tensor,
    teacher_embedding: torch.Tensor,
    distance_weight: float = 25.0,
    angle_weight: float = 50.0,
) -> torch.Tensor:
    """Relational KD (Park et al. 2019, "Relational Knowledge Distillation").

    Distance term: `smoothL1(psi_D(s), psi_D(t))` over all pairs, where
    `psi_D(e)_ij = ||e_i - e_j|| / mu` and `mu` is the mean of the non-zero distances of the
    batch. Angle term: `smoothL1(psi_A(s), psi_A(t))` over all triplets, with
    `psi_A(e)_ijk = cos angle(e_j - e_i, e_k - e_i)`. The loss is
    `distance_weight * distance + angle_weight * angle`, each smooth-L1 averaged over its
    entries as in the authors' code. Embedding widths may differ.
    """
    with torch.no_grad():
        teacher_d = _by_mean_distance(pairwise_distances(teacher_embedding))
        teacher_a = triplet_angles(teacher_embedding)
    student_d = _by_mean_distance(pairwise_distances(student_embedding))
    distance = F.smooth_l1_loss(student_d, teacher_d)
    angle = F.smooth_l1_loss(triplet_angles(student_embedding), teacher_a)
    return distance_weight * distance + angle_weight * angle


def _cosine_probabilities(embedding: torch.Tensor, eps: float) -> torch.Tensor:
    flat = embedding.flatten(1)
    unit = flat / (flat.norm(dim=1, keepdim=True) + eps)
    kernel = (unit @ unit.t() + 1.0) / 2.0
    return kernel / kernel.sum(dim=1, keepdim=True)


@full_precision
def pkt_loss(
    student_embedding: torch.Tensor, teacher_embedding: torch.Tensor, eps: float = 1e-7
) -> torch.Tensor:
    """Probabilistic knowledge transfer (Passalis & Tefas 2018, "Learning Deep
    Representations with Probabilistic Knowledge Transfer").

    The cosine kernel `K_ij = (cos(e_i, e_j) + 1) / 2` becomes conditional probabilities
    `p_{j|i} = K_ij / sum_k K_ik` for student (p^s) and teacher (p^t); the loss is
    `mean_{i,j} p^t_{j|i} log((p^t_{j|i} + eps) / (p^s_{j|i} + eps))`, the KL divergence
    averaged over all B x B entries as in the authors' code.
    """
    student = _cosine_probabilities(student_embedding, eps)
    teacher = _cosine_probabilities(teacher_embedding.detach(), eps)
    return (teacher * torch.log((teacher + eps) / (student + eps))).mean()


def _poly_kernel_mean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`mean_{n,i,j} (a_ni . b_nj)^2` for (B, C, P) tensors: the degree-2 polynomial kernel."""
    return (a @ b.transpose(1, 2)).pow(2).mean()


@full_precision
def nst_loss(student_feature: torch.Tensor, teacher_feature: torch.Tensor) -> torch.Tensor:
    """Neuron selectivity transfer (Huang & Wang 2017, "Like What You Like").

    Each channel's activation over the P spatial positions is one sample, L2-normalised; with
    the polynomial kernel `k(x, y) = (x^T y)^2` the loss is the squared MMD between the
    student's and the teacher's channel distributions,
    `mean k(s, s') + mean k(t, t') - 2 mean k(s, t)`, averaged over the batch. The larger
    map is average-pooled to the smaller spatial size; channel counts may differ.
    """
    _as_maps(student_feature, "neuron selectivity transfer")
    _as_maps(teacher_feature, "neuron selectivity transfer")
    size = _smaller_spatial(student_feature, teacher_feature)
    student = F.normalize(_pool_to(student_feature, size).flatten(2), dim=2)
    teacher = F.normalize(_pool_to(teacher_feature.detach(), size).flatten(2), dim=2)
    return (_poly_kernel_mean(teacher, teacher) + _poly_kernel_mean(student, student)
            - 2 * _poly_kernel_mean(student, teacher))


# ---------------------------------------------------------------- logit methods


def _binary_log_probs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log [p_target, 1 - p_target] of softmax(logits), computed stably, (B, 2)."""
    log_p = F.log_softmax(logits, dim=1)
    target = log_p.gather(1, targets[:, None])
    mask = F.one_hot(targets, logits.shape[1]).bool()
    rest = torch.logsumexp(log_p.masked_fill(mask, float("-inf")), dim=1, keepdim=True)
    return torch.cat([target, rest], dim=1)


def _non_target(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The logits of the non-target classes, (B, K - 1), in class order."""
    keep = ~F.one_hot(targets, logits.shape[1]).bool()
    return logits[keep].view(len(logits), logits.shape[1] - 1)


@full_precision
def dkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    temperature: float = 4.0,
) -> torch.Tensor:
    """Decoupled KD (Zhao et al. 2022, "Decoupled Knowledge Distillation").

    `alpha * TCKD + beta * NCKD`, where TCKD is `T^2 KL(b_t || b_s)` on the binary
    distributions `b = [p_target, 1 - p_target]` of softmax(z/T), and NCKD is
    `T^2 KL(p~_t || p~_s)` on softmax(z/T) over the non-target classes alone; both are summed
    over classes and averaged over the batch. The warm-up of the paper is a schedule of
    `kd_weight`, not part of this function.
    """
    t = temperature
    student_b = _binary_log_probs(student_logits / t, targets)
    teacher_logits = teacher_logits.detach()
    teacher_b = _binary_log_probs(teacher_logits / t, targets)
    tckd = F.kl_div(student_b, teacher_b, reduction="batchmean", log_target=True)
    student_n = F.log_softmax(_non_target(student_logits, targets) / t, dim=1)
    teacher_n = F.log_softmax(_non_target(teacher_logits, targets) / t, dim=1)
    nckd = F.kl_div(student_n, teacher_n, reduction="batchmean", log_target=True)
    return (alpha * tckd + beta * nckd) * t**2


def _pearson(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of each row of `a` with the same row of `b`, (B,)."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


@full_precision
def dist_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    beta: float = 1.0,
    gamma: float = 1.0,
    temperature: float = 1.0,
) -> torch.Tensor:
    """DIST (Huang et al. 2022, "Knowledge Distillation from A Stronger Teacher").

    With `Y = softmax(Z / T)` row-wise, inter-class relation `1 - mean_i rho(Y_s[i], Y_t[i])`
    (Pearson correlation across classes, per example) and intra-class relation
    `1 - mean_c rho(Y_s[:, c], Y_t[:, c])` (across the batch, per class); the loss is
    `T^2 (beta * inter + gamma * intra)`.
    """
    student = F.softmax(student_logits / temperature, dim=1)
    teacher = F.softmax(teacher_logits.detach() / temperature, dim=1)
    inter = 1.0 - _pearson(student, teacher).mean()
    intra = 1.0 - _pearson(student.t(), teacher.t()).mean()
    return temperature**2 * (beta * inter + gamma * intra)


def standardise(logits: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Z-score each logit vector: `(z - mean(z)) / (std(z) + eps)` (unbiased std, per row)."""
    mean = logits.mean(dim=1, keepdim=True)
    return (logits - mean) / (logits.std(dim=1, keepdim=True) + eps)


@full_precision
def ls_kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """KD with logit standardisation (Sun et al. 2024, "Logit Standardization in Knowledge
    Distillation"): `kd_loss(Z(s), Z(t), T)` with `Z(z) = (z - mean(z)) / std(z)`, i.e.
    `T^2 KL(softmax(Z(t)/T) || softmax(Z(s)/T))`, summed over classes, batch-averaged.
    """
    return kd_loss(standardise(student_logits), standardise(teacher_logits), temperature)


# ---------------------------------------------------------------- contrastive (CRD)


@full_precision
def crd_nce_loss(scores: torch.Tensor, num_data: int, eps: float = 1e-7) -> torch.Tensor:
    """The NCE objective of CRD (Tian et al. 2020, "Contrastive Representation Distillation").

    `scores` is (B, 1 + K): column 0 the (normalised, exponentiated) score of the positive
    pair, the rest K negatives drawn uniformly from `num_data` examples (noise probability
    `Pn = 1/num_data`). With `m = K`, the loss is
    `-(1/B) sum_i [log(P_i0 / (P_i0 + m Pn)) + sum_k log(m Pn / (P_ik + m Pn))]`.
    """
    negatives = scores.shape[1] - 1
    noise = negatives / num_data
    positive = scores[:, 0]
    log_d1 = torch.log(positive / (positive + noise + eps))
    log_d0 = torch.log(noise / (scores[:, 1:] + noise + eps))
    return -(log_d1.sum() + log_d0.sum()) / len(scores)
