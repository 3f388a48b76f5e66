"""Teacher-output cache: student-phase epoch time with and without the cache, against the
ideal speed-up (t_teacher + t_student) / t_student.

t_teacher is the teacher's forward pass over the training batches and t_student the student's
KD training epoch (teacher logits already at hand, validation included, the engine's choice
of optimiser kernels), both timed with bare PyTorch; the engine epoch times come from its
events. Runs alternate cache on / off; medians.

    python bench/cache.py                          # MNIST-1D and Fashion-MNIST (20,000 images)
    python bench/cache.py --datasets fashion-mnist --subset 0 --epochs 2
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    PhaseClock,
    add_data_options,
    apply_threads,
    table,
    write_result,
)
from overhead import bench_config  # noqa: E402

from kdstudio.core.checkpoint import load_weights  # noqa: E402
from kdstudio.core.data import Splits, prepare_data  # noqa: E402
from kdstudio.core.distill import cache  # noqa: E402
from kdstudio.core.engine import fused_optimizer_supported, run  # noqa: E402
from kdstudio.core.models import create_model  # noqa: E402
from kdstudio.core.store import Store  # noqa: E402


@torch.no_grad()
def teacher_epoch(teacher: torch.nn.Module, data: Splits, batch: int) -> float:
    started = time.perf_counter()
    for idx in torch.randperm(len(data.y_train)).split(batch):
        teacher(data.x_train[idx])
    return time.perf_counter() - started


def student_epoch(config, data: Splits, teacher_logits: torch.Tensor) -> float:
    """One bare KD epoch of the student with the teacher's logits given, plus validation,
    with the engine's choice of optimiser kernels."""
    torch.manual_seed(1)
    student = create_model(config.student.arch, data.input_shape, data.num_classes,
                           **config.student.params)
    params = list(student.parameters())
    # the optimiser kernels the engine picks (fused where torch has them), so that the ideal
    # is not flattered by a slower bare student
    optimizer = torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True,
                                fused=fused_optimizer_supported(params))
    t = config.distill.temperature
    started = time.perf_counter()
    for idx in torch.randperm(len(data.y_train)).split(config.data.batch_size):
        logits = student(data.x_train[idx])
        kd = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits[idx] / t, 1),
                      reduction="batchmean", log_target=True) * t * t
        loss = 0.5 * F.cross_entropy(logits, data.y_train[idx]) + 0.5 * kd
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        student.eval()
        torch.cat([student(chunk) for chunk in data.x_val.split(1024)])
    return time.perf_counter() - started


def measure(dataset: str, epochs: int, repeats: int, subset: int, folder: Path) -> list:
    config = bench_config(dataset, epochs, subset)
    store = Store(folder / f"{dataset}.db")
    first = run(config, store)
    assert first.status == "completed", first.error
    config.teacher.checkpoint = store.artifacts(first.run_id, "teacher")[0]["path"]
    config.teacher.epochs = 0
    data = prepare_data(config.data.dataset, config.data.path, config.data.params,
                        config.data.val_fraction, config.seed, config.data.test_fraction)
    teacher = create_model(config.teacher.arch, data.input_shape, data.num_classes,
                           **config.teacher.params)
    load_weights(teacher, config.teacher.checkpoint)
    teacher.eval()
    with torch.no_grad():
        teacher_logits = torch.cat([teacher(c) for c in data.x_train.split(1024)])
    epoch_times: dict[bool, list[float]] = {True: [], False: []}
    t_teacher, t_student, builds = [], [], []
    for _ in range(repeats):
        for cached in (True, False):
            cache.clear()  # every cached run builds its cache: no reuse across runs here
            config.distill.cache_teacher = cached
            clock = PhaseClock()
            result = run(config, store, clock)
            assert result.status == "completed", result.error
            epoch_times[cached] += clock.epoch_seconds["student"]
            for line in clock.logs:
                found = re.search(r"computed once in eval mode in ([0-9.]+) s", line)
                if found:
                    builds.append(float(found.group(1)))
        t_teacher.append(teacher_epoch(teacher, data, config.data.batch_size))
        t_student.append(student_epoch(config, data, teacher_logits))
    store.close()
    tt, ts = statistics.median(t_teacher), statistics.median(t_student)
    on, off = statistics.median(epoch_times[True]), statistics.median(epoch_times[False])
    ideal, speedup = (tt + ts) / ts, off / on
    return [dataset, f"{len(data.y_train):,}", f"{tt:.2f}", f"{ts:.2f}", f"{ideal:.2f}x",
            f"{off:.2f}", f"{on:.2f}", f"{speedup:.2f}x", f"{speedup / ideal:.2f}",
            f"{statistics.median(builds):.2f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_options(parser, repeats=2)
    args = parser.parse_args()
    apply_threads(args)
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(name, args.epochs, args.repeats, args.subset, Path(folder))
                for name in args.datasets]
    headers = ["data", "train samples", "t_teacher s", "t_student s", "ideal speed-up",
               "engine epoch s, cache off", "engine epoch s, cache on", "speed-up",
               "fraction of ideal", "cache build s (once)"]
    body = table(headers, rows) + (
        f"\n\nStudent phase of Hinton KD, CNN teacher -> MLP student, {args.epochs} epochs x "
        f"{args.repeats} alternating repeats per setting; medians of epoch times. Goal: "
        "fraction of ideal >= 0.9. The CPU is shared with other processes, so timings are noisy.")
    write_result("cache", "Teacher-output cache: epoch time against the ideal", body)


if __name__ == "__main__":
    main()
