"""How much this machine scales at all: one fixed workload in 1 process, then in N at once.

No KD Studio code runs here: each workload is a bare loop with 1 torch thread, so the ratio
is the ceiling any sweep runner meets on these cores.

- `train`: the sweep trial's student phase as a plain PyTorch loop: the digits-kd student
  (MLP 64 -> 32 -> 10) on 1437 samples of 64 features, batch 64, SGD with momentum,
  cross-entropy plus KD against cached teacher logits (T = 4).
- `teacher`: the digits-kd teacher (Conv-BN-ReLU-MaxPool 32, 64 on 1 x 8 x 8, then linear)
  trained the same way, cross-entropy only.
- `python`: a pure-Python busy loop (the interpreter only, no memory traffic).
- `matmul`: 1024 x 1024 float32 matmuls (vector units, data in cache).
- `memory`: copies of a 256 MB tensor (memory bandwidth).

Every process prepares its data and warms up first, then all start together at a barrier;
each one's time is its own loop's. Throughput with N processes = N x (time alone) / (slowest
of the N). Rounds alternate 1 and N; the load average is printed around each.

    python bench/parallel_ceiling.py                 # ~1 minute on 2 cores
    python bench/parallel_ceiling.py --rounds 3 --workloads train python
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_result  # noqa: E402

WORKLOADS = ("train", "teacher", "python", "matmul", "memory")


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def student_loop(epochs: int) -> Callable[[], None]:
    """The trial's student phase: MLP, KD against fixed teacher logits."""
    torch.manual_seed(0)
    x, y = torch.randn(1437, 64), torch.randint(0, 10, (1437,))
    teacher_logits = torch.randn(1437, 10) * 3
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def loss(index: torch.Tensor) -> torch.Tensor:
        logits = model(x[index])
        kd = F.kl_div(F.log_softmax(logits / 4, 1), F.softmax(teacher_logits[index] / 4, 1),
                      reduction="batchmean") * 16
        return 0.5 * F.cross_entropy(logits, y[index]) + 0.5 * kd
    return training_loop(model, len(x), epochs, loss)


def teacher_loop(epochs: int) -> Callable[[], None]:
    """The digits-kd teacher: two conv blocks on 1 x 8 x 8 images."""
    torch.manual_seed(0)
    x, y = torch.randn(1437, 1, 8, 8), torch.randint(0, 10, (1437,))
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 2 * 2, 10))
    return training_loop(model, len(x), epochs,
                         lambda index: F.cross_entropy(model(x[index]), y[index]))


def training_loop(model: nn.Module, n: int, epochs: int,
                  loss: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
    """`epochs` of SGD with momentum over shuffled batches of 64 of `n` examples;
    `loss(index)` is a batch's loss."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    def loop() -> None:
        for _ in range(epochs):
            order = torch.randperm(n)
            for start in range(0, n, 64):
                value = loss(order[start:start + 64])
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
    return loop


def python_loop(count: int) -> Callable[[], None]:
    def loop() -> None:
        total = 0
        for i in range(count):
            total += i * i % 7
    return loop


def matmul_loop(count: int) -> Callable[[], None]:
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)

    def loop() -> None:
        for _ in range(count):
            torch.mm(a, b)
    return loop


def memory_loop(count: int) -> Callable[[], None]:
    source = torch.randn(64 * 1024 * 1024)  # 256 MB
    target = torch.empty_like(source)

    def loop() -> None:
        for _ in range(count):
            target.copy_(source)
    return loop


def make_loop(name: str, scale: float) -> Callable[[], None]:
    """Each sized to about 2-3 s alone on this machine's cores (times `scale`)."""
    sizes = {"train": (student_loop, 200), "teacher": (teacher_loop, 15),
             "python": (python_loop, 15_000_000), "matmul": (matmul_loop, 50),
             "memory": (memory_loop, 40)}
    build, size = sizes[name]
    return build(max(1, round(size * scale)))


def child(name: str, scale: float, barrier: object, results: object) -> None:
    torch.set_num_threads(1)
    loop = make_loop(name, scale)
    make_loop(name, scale * 0.05)()  # warm-up: allocator, kernels, caches
    barrier.wait()  # type: ignore[attr-defined]
    started, cpu = time.perf_counter(), time.process_time()
    loop()
    results.put((time.perf_counter() - started,  # type: ignore[attr-defined]
                 time.process_time() - cpu))


def timed(name: str, processes: int, scale: float) -> list[tuple[float, float]]:
    """Each process's loop (wall, CPU) seconds, all `processes` starting together."""
    context = mp.get_context("fork")  # torch is imported, no thread pool started yet
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=child, args=(name, scale, barrier, results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    times = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    return times


def steal_ticks() -> int:
    """Ticks the hypervisor gave this VM's CPUs to others (the `steal` column of /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8])
    except (OSError, IndexError, ValueError):
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--processes", type=int, default=2, help="processes side by side")
    parser.add_argument("--rounds", type=int, default=2, help="1-then-N pairs per workload")
    parser.add_argument("--scale", type=float, default=1.0, help="loop size factor")
    args = parser.parse_args()
    n = args.processes
    rows = []
    fmt = " / ".join
    for name in args.workloads:
        alone: list[float] = []
        together: list[float] = []
        cpu_alone: list[float] = []
        cpu_together: list[float] = []
        ratios: list[float] = []
        loads: list[str] = []
        steal = steal_ticks()
        for round_ in range(args.rounds):
            order = (1, n) if round_ % 2 == 0 else (n, 1)
            got: dict[int, list[tuple[float, float]]] = {}
            before = load()
            for count in order:
                got[count] = timed(name, count, args.scale)
            loads.append(f"{before} / {load()}")
            alone.append(got[1][0][0])
            cpu_alone.append(got[1][0][1])
            together.append(max(wall for wall, _ in got[n]))
            cpu_together.append(statistics.fmean(cpu for _, cpu in got[n]))
            ratios.append(n * alone[-1] / together[-1])
            print(f"{name} round {round_ + 1}: alone {alone[-1]:.2f} s (CPU "
                  f"{cpu_alone[-1]:.2f}), {n} at once "
                  + ", ".join(f"{wall:.2f} (CPU {cpu:.2f})" for wall, cpu in got[n])
                  + f" s -> {ratios[-1]:.2f}x; load {loads[-1]}", flush=True)
        rows.append([name, fmt(f"{t:.2f}" for t in alone), fmt(f"{t:.2f}" for t in together),
                     fmt(f"{r:.2f}x" for r in ratios),
                     fmt(f"{t:.2f}" for t in cpu_alone), fmt(f"{t:.2f}" for t in cpu_together),
                     f"{100 * (sum(cpu_together) / sum(cpu_alone) - 1):+.0f} %",
                     str(steal_ticks() - steal), "; ".join(loads)])
    body = (f"The same loop, 1 torch thread, in 1 process and then in {n} processes at once "
            f"({args.rounds} rounds, alternating which goes first). Throughput = {n} x alone / "
            f"slowest of {n} (wall clock; the ideal is {n:.2f}x). CPU time is each loop's own "
            f"(`time.process_time`): if it grows side by side, the cores slow each other down "
            f"(shared cache, memory, a shared physical core); if only the wall time grows, "
            f"the loops waited for a core (other programs on the machine).\n\n"
            + table(["workload", "alone (s)", f"slowest of {n} (s)", f"throughput {n} vs 1",
                     "CPU alone (s)", f"CPU each of {n} (s)", "CPU time side by side",
                     "steal ticks", "load average before / after (per round)"], rows))
    write_result("parallel_ceiling", f"Parallel ceiling: 1 process against {n}", body)


if __name__ == "__main__":
    main()
