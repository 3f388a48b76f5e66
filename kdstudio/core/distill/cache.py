"""Teacher-output cache: a frozen teacher on data without random augmentation gives the same
outputs every epoch, so its logits (and the features a method needs) are computed once for
the whole training set, in eval mode, and read back by sample index.

The cache is keyed by a hash of the teacher's weights, the training inputs, the feature
names and the precision. After a run, the last cache stays in memory when it is in host
memory and at most KEEP_BYTES, so the next run with the same teacher and data (another
method, say) reuses it; a larger one, or one in GPU memory, is let go (`release`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from kdstudio.core.data.examples import Examples, as_examples
from kdstudio.core.distill.features import FeatureRecorder
from kdstudio.core.distill.precision import Precision

MAX_CACHE_BYTES = 1 << 30  # above this the teacher simply runs on every batch
KEEP_BYTES = 256 << 20  # kept between runs up to this size (host memory only)

TeacherOutputs = tuple[torch.Tensor, dict[str, torch.Tensor]]


@dataclass
class TeacherCache:
    """Teacher logits (N, K) and features (N, ...) for every training example, by index."""

    key: str
    logits: torch.Tensor
    features: dict[str, torch.Tensor]
    seconds: float = 0.0

    @property
    def nbytes(self) -> int:
        tensors = [self.logits, *self.features.values()]
        return sum(t.numel() * t.element_size() for t in tensors)

    def lookup(self, indices: torch.Tensor) -> TeacherOutputs:
        return self.logits[indices], {name: f[indices] for name, f in self.features.items()}


_last: TeacherCache | None = None


def clear() -> None:
    """Forget the cache kept from the last run (frees its memory)."""
    global _last
    _last = None


def release() -> None:
    """At the end of a run: keep the cache for the next run only if it is in host memory
    and at most KEEP_BYTES; GPU memory and large buffers go back at once."""
    if _last is not None and (_last.logits.device.type != "cpu" or _last.nbytes > KEEP_BYTES):
        clear()


def kept() -> TeacherCache | None:
    """The cache kept from the last run, if any."""
    return _last


def cache_key(teacher: nn.Module, x: torch.Tensor | Examples, feature_names: list[str],
              precision: str) -> str:
    """sha256 over the teacher's parameters and buffers, the inputs (their values, or for
    inputs read from files the files and their stamps), names and precision."""
    digest = hashlib.sha256()
    for name, tensor in teacher.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    as_examples(x).fingerprint(digest)
    digest.update(",".join(feature_names).encode())
    digest.update(precision.encode())
    return digest.hexdigest()


@torch.no_grad()
def estimate_bytes(teacher: nn.Module, recorder: FeatureRecorder, sample: torch.Tensor,
                   num_samples: int) -> int:
    """Bytes the cache would take, from the output sizes of one sample batch (float32)."""
    was_training = teacher.training
    teacher.eval()
    logits = teacher(sample)
    teacher.train(was_training)
    per_example = logits[0].numel() + sum(f[0].numel() for f in recorder.features.values())
    return per_example * 4 * num_samples


@torch.no_grad()
def build_cache(teacher: nn.Module, recorder: FeatureRecorder, x: torch.Tensor | Examples,
                batch_size: int, device: torch.device, precision: Precision,
                move: Callable[[torch.Tensor, torch.device], torch.Tensor], key: str,
                should_stop: Callable[[], bool] = lambda: False) -> TeacherCache | None:
    """Run the teacher once over `x` in eval mode, in batches; store float32 outputs on
    `device` (the training device), in the order of `x`. None if `should_stop()` said yes."""
    started = time.perf_counter()
    was_training = teacher.training
    teacher.eval()
    logits: list[torch.Tensor] = []
    features: dict[str, list[torch.Tensor]] = {}
    for chunk in as_examples(x).chunks(batch_size):
        if should_stop():
            teacher.train(was_training)
            return None
        with precision.autocast():
            logits.append(teacher(move(chunk, device)).float())
        for name, value in recorder.features.items():
            features.setdefault(name, []).append(value.float())
    teacher.train(was_training)
    return TeacherCache(key, torch.cat(logits), {n: torch.cat(v) for n, v in features.items()},
                        time.perf_counter() - started)


def get_cache(teacher: nn.Module, recorder: FeatureRecorder, feature_names: list[str],
              x: torch.Tensor | Examples, batch_size: int, device: torch.device,
              precision: Precision, move: Callable[[torch.Tensor, torch.device], torch.Tensor],
              should_stop: Callable[[], bool] = lambda: False
              ) -> tuple[TeacherCache | None, bool]:
    """The cache for this teacher and data (`recorder` records `feature_names`): the kept
    one if its key matches, else a new one, which is then kept. Returns (cache, reused);
    the cache is None when `should_stop()` interrupted the build."""
    global _last
    key = cache_key(teacher, x, feature_names, precision.name)
    if _last is not None and _last.key == key and _last.logits.device == device:
        return _last, True
    _last = None  # free the old one before building
    _last = build_cache(teacher, recorder, x, batch_size, device, precision, move, key,
                        should_stop)
    return _last, False


def teacher_source(teacher: nn.Module, recorder: FeatureRecorder, feature_names: list[str],
                   x: torch.Tensor | Examples, batch_size: int, device: torch.device,
                   precision: Precision, enabled: bool,
                   move: Callable[[torch.Tensor, torch.device], torch.Tensor],
                   log: Callable[[str], None], should_stop: Callable[[], bool] = lambda: False
                   ) -> TeacherSource:
    """The teacher outputs of a distillation phase, cached when `enabled` and small enough;
    logs which, and why."""
    if not enabled:
        log("Teacher-output cache off (distill.cache_teacher = false): the teacher runs on "
            "every batch")
        return TeacherSource(teacher, recorder, precision)
    size = estimate_bytes(teacher, recorder, move(as_examples(x).head(2), device), len(x))
    if size > MAX_CACHE_BYTES:
        log(f"Teacher-output cache off: it would take {_size(size)} (limit "
            f"{_size(MAX_CACHE_BYTES)}); the teacher runs on every batch")
        return TeacherSource(teacher, recorder, precision)
    cache, reused = get_cache(teacher, recorder, feature_names, x, batch_size, device,
                              precision, move, should_stop)
    if cache is None:
        return TeacherSource(teacher, recorder, precision)
    what = "logits" + (f" and features {', '.join(feature_names)}" if feature_names else "")
    how = ("reused from the previous run" if reused
           else f"computed once in eval mode in {cache.seconds:.2f} s")
    log(f"Teacher-output cache on: {what} of {len(x):,} training examples {how} "
        f"({_size(cache.nbytes)}, key {cache.key[:12]})")
    return TeacherSource(teacher, recorder, precision, cache)


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


class TeacherSource:
    """Where a training step gets the teacher's outputs: the cache, by the batch's sample
    indices, or a forward pass of the (frozen, eval-mode) teacher on the batch."""

    def __init__(self, teacher: nn.Module, recorder: FeatureRecorder, precision: Precision,
                 cache: TeacherCache | None = None) -> None:
        self.teacher = teacher
        self.recorder = recorder
        self.precision = precision
        self.autocasting = precision.enabled  # read once: a property call on every step costs
        self.cache = cache

    def __call__(self, x: torch.Tensor, indices: torch.Tensor) -> TeacherOutputs:
        if self.cache is not None:
            return self.cache.lookup(indices)
        with torch.no_grad():
            if self.autocasting:
                with self.precision.autocast():
                    logits = self.teacher(x)
            else:  # float32: no autocast context to enter and leave on every step
                logits = self.teacher(x)
        return logits, self.recorder.features
