"""Engine overhead: the engine (events and SQLite writes on) against a bare PyTorch KD loop
written here, with the same models, data, batch size, seed, optimiser and schedule.

Both train the student for the same epochs against the same frozen teacher (loaded from one
checkpoint), with the teacher-output cache off so both do the same work; both evaluate on
the validation split after each epoch. Each repeat is a pair of runs, in alternating order
(engine then bare, bare then engine, ...), so load from other processes and drift hit both
alike; the table gives the median of the pairs' throughput ratios, and the same ratio in CPU
time (seconds the process ran), which waiting for a busy CPU does not inflate.

    python bench/overhead.py                      # MNIST-1D 101 pairs, Fashion-MNIST 7
    python bench/overhead.py --datasets mnist1d --epochs 20 --repeats 15 --threads 1
"""

from __future__ import annotations

import argparse
import math
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

from kdstudio.core.checkpoint import load_weights  # noqa: E402
from kdstudio.core.config import RunConfig  # noqa: E402
from kdstudio.core.data import Splits, prepare_data  # noqa: E402
from kdstudio.core.engine import run  # noqa: E402
from kdstudio.core.models import create_model  # noqa: E402
from kdstudio.core.store import Store  # noqa: E402

DEFAULT_EPOCHS = {"mnist1d": 10, "fashion-mnist": 3}  # runs of 1 and 14 s
DEFAULT_REPEATS = {"mnist1d": 101, "fashion-mnist": 7}  # about 5 and 4 minutes


def bench_config(dataset: str, epochs: int, subset: int) -> RunConfig:
    """CNN teacher -> MLP student, SGD + Nesterov, cosine schedule, Hinton KD."""
    config = RunConfig(name=f"overhead-{dataset}", seed=0, device="cpu")
    config.data.dataset = dataset
    config.teacher.arch = "cnn"
    config.student.arch = "mlp"
    if dataset == "mnist1d":
        config.data.batch_size = 100
        config.teacher.params = {"channels": [64, 64, 64], "kernel_size": 5}
        config.student.params = {"hidden_sizes": [100, 100]}
    else:
        config.data.batch_size = 128
        config.data.params = {"train_limit": subset}
        config.teacher.params = {"channels": [32, 64]}
        config.student.params = {"hidden_sizes": [64]}
    config.teacher.epochs = 1
    config.optim.name, config.optim.lr, config.optim.momentum = "sgd", 0.05, 0.9
    config.optim.schedule, config.optim.epochs = "cosine", epochs
    d = config.distill
    d.method, d.temperature, d.ce_weight, d.kd_weight = "kd", 4.0, 0.5, 0.5
    d.baseline, d.cache_teacher = False, False
    return config


def bare_kd_loop(config: RunConfig, data: Splits, teacher: torch.nn.Module
                 ) -> tuple[float, float, float]:
    """The hand-written loop: (seconds and CPU seconds for all epochs with per-epoch
    validation, val acc)."""
    torch.manual_seed(config.seed + 1)
    student = create_model(config.student.arch, data.input_shape, data.num_classes,
                           **config.student.params)
    o, d = config.optim, config.distill
    optimizer = torch.optim.SGD(student.parameters(), lr=o.lr, momentum=o.momentum,
                                nesterov=True, weight_decay=o.weight_decay)
    torch.manual_seed(config.seed + 2)
    order = torch.Generator().manual_seed(config.seed + 3)
    n, batch, t = len(data.y_train), config.data.batch_size, d.temperature
    total_steps = o.epochs * math.ceil(n / batch)
    step, accuracy = 0, 0.0
    started, cpu_started = time.perf_counter(), time.process_time()
    for _epoch in range(o.epochs):
        student.train()
        for idx in torch.randperm(n, generator=order).split(batch):
            for group in optimizer.param_groups:
                group["lr"] = o.lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
            x, y = data.x_train[idx], data.y_train[idx]
            with torch.no_grad():
                teacher_logits = teacher(x)
            logits = student(x)
            kd = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                          reduction="batchmean", log_target=True) * t * t
            loss = d.ce_weight * F.cross_entropy(logits, y) + d.kd_weight * kd
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        student.eval()
        with torch.no_grad():
            val = torch.cat([student(chunk) for chunk in data.x_val.split(1024)])
        accuracy = (val.argmax(1) == data.y_val).float().mean().item()
    return time.perf_counter() - started, time.process_time() - cpu_started, accuracy


def median_interval(values: list[float]) -> tuple[float, float]:
    """A distribution-free 95 % confidence interval for the median: the order statistics
    k and n - k + 1 with k = floor(n / 2 - 0.98 sqrt(n)) (normal approximation of the
    binomial); the whole range for fewer than 6 values."""
    ordered = sorted(values)
    n = len(ordered)
    k = math.floor(n / 2 - 0.98 * math.sqrt(n))
    if k < 1:
        return ordered[0], ordered[-1]
    return ordered[k - 1], ordered[n - k]


def measure(dataset: str, epochs: int, repeats: int, subset: int, folder: Path) -> list:
    config = bench_config(dataset, epochs, subset)
    store = Store(folder / f"{dataset}.db")
    first = run(config, store)  # trains the teacher once; later runs load it
    assert first.status == "completed", first.error
    checkpoint = store.artifacts(first.run_id, "teacher")[0]["path"]
    config.teacher.checkpoint, config.teacher.epochs = checkpoint, 0
    data = prepare_data(config.data.dataset, config.data.path, config.data.params,
                        config.data.val_fraction, config.seed, config.data.test_fraction)
    teacher = create_model(config.teacher.arch, data.input_shape, data.num_classes,
                           **config.teacher.params)
    load_weights(teacher, checkpoint)
    teacher.eval().requires_grad_(False)
    samples = len(data.y_train) * epochs
    engine_rates, bare_rates, ratios, cpu_ratios = [], [], [], []
    accuracies = {"engine": 0.0, "bare": 0.0}
    events = rows = 0

    def engine_run() -> tuple[float, float]:
        nonlocal events, rows
        clock = PhaseClock()
        result = run(config, store, clock)
        assert result.status == "completed", result.error
        accuracies["engine"], events = result.summary["student_last_val_acc"], clock.events
        rows = len(store.metrics(result.run_id))
        return clock.phase_seconds["student"], clock.phase_cpu_seconds["student"]

    def bare_run() -> tuple[float, float]:
        seconds, cpu_seconds, accuracies["bare"] = bare_kd_loop(config, data, teacher)
        return seconds, cpu_seconds

    for repeat in range(repeats):
        if repeat % 2 == 0:
            engine, bare = engine_run(), bare_run()
        else:
            bare, engine = bare_run(), engine_run()
        engine_rates.append(samples / engine[0])
        bare_rates.append(samples / bare[0])
        ratios.append(bare[0] / engine[0])
        cpu_ratios.append(bare[1] / engine[1])
    store.close()
    low, high = median_interval(ratios)
    return [dataset, repeats, f"{len(data.y_train):,} x {epochs}", config.data.batch_size,
            f"{statistics.median(bare_rates):,.0f}", f"{statistics.median(engine_rates):,.0f}",
            f"**{statistics.median(ratios):.3f}**", f"{low:.3f} - {high:.3f}",
            f"{min(ratios):.3f} - {max(ratios):.3f}",
            f"{max(engine_rates) / max(bare_rates):.3f}",
            f"{statistics.median(cpu_ratios):.3f}",
            f"{accuracies['bare']:.2%} / {accuracies['engine']:.2%}", f"{events:,} / {rows:,}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_options(parser, repeats=0, epochs_help=(
        "epochs per run (0 = per dataset: 10 for MNIST-1D, whose steps take about 3 ms, "
        "3 for Fashion-MNIST)"))
    args = parser.parse_args()
    apply_threads(args)
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(name, args.epochs or DEFAULT_EPOCHS[name],
                        args.repeats or DEFAULT_REPEATS[name], args.subset, Path(folder))
                for name in args.datasets]
    headers = ["data", "pairs", "train samples x epochs", "batch", "bare loop samples/s",
               "engine samples/s", "ratio (median of pairs)", "95 % interval of the median",
               "ratio range",
               "ratio of best runs", "CPU-time ratio (median)", "val acc bare / engine",
               "events / SQLite rows per run"]
    body = table(headers, rows) + (
        "\n\nStudent phase of Hinton KD, CNN teacher -> MLP student, teacher-output cache off, "
        "pairs of runs in alternating order. Ratio = engine / bare throughput "
        "(goal >= 0.98) within a pair; the ratio of best runs compares the fastest of each; "
        "the CPU-time ratio compares the CPU seconds each used, which time spent waiting for "
        "a CPU held by another process does not count. Equal validation accuracy shows both "
        "did the same computation.")
    write_result("overhead", "Engine overhead against a bare PyTorch loop", body)


if __name__ == "__main__":
    main()
