"""Shared by the bench scripts: configs, timing through engine events, Markdown output."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from kdstudio.core.config import RunConfig
from kdstudio.core.events import Epoch, Event, Log, PhaseFinished, PhaseStarted

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """One line: CPU, cores, threads torch uses, torch and Python versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats as given (format them before)."""
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_result(name: str, title: str, body: str) -> Path:
    """Print `body` and write it, with the command and the machine, to results/<name>.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join([str(Path(sys.argv[0]).as_posix()), *sys.argv[1:]])
    text = (f"## {title}\n\n{body}\n\nCommand: `{command}`  \n"
            f"Machine: {machine()}  \n"
            f"Date: {dt.datetime.now().isoformat(timespec='minutes')}\n")
    path = RESULTS / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    print(text)
    print(f"written to {path}")
    return path


def mean_std(values: Sequence[float], scale: float = 1.0, digits: int = 1) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values) * scale:.{digits}f}"


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0 = torch's default); 1 suffers least when "
                             "other processes load the CPU")


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def add_data_options(parser: argparse.ArgumentParser, repeats: int,
                     epochs_help: str = "") -> None:
    """The options of the benches that time the engine on MNIST-1D and Fashion-MNIST."""
    parser.add_argument("--datasets", nargs="+", default=["mnist1d", "fashion-mnist"],
                        choices=["mnist1d", "fashion-mnist"])
    parser.add_argument("--epochs", type=int, default=0 if epochs_help else 3,
                        help=epochs_help or None)
    parser.add_argument("--repeats", type=int, default=repeats,
                        help="pairs or repeats per dataset" + (" (0 = per dataset)" if not repeats
                                                                else ""))
    parser.add_argument("--subset", type=int, default=20000,
                        help="Fashion-MNIST training images to load (0 = all 60,000)")
    add_threads_option(parser)


class PhaseClock:
    """An engine event sink that timestamps phases and epochs (and keeps the log lines)."""

    def __init__(self) -> None:
        self.phase_start: dict[str, float] = {}
        self.phase_seconds: dict[str, float] = {}
        self.phase_cpu_start: dict[str, float] = {}
        self.phase_cpu_seconds: dict[str, float] = {}
        self.epoch_seconds: dict[str, list[float]] = {}
        self._last: dict[str, float] = {}
        self.logs: list[str] = []
        self.events = 0

    def __call__(self, event: Event) -> None:
        now = time.perf_counter()
        self.events += 1
        if isinstance(event, PhaseStarted):
            self.phase_start[event.phase] = self._last[event.phase] = now
            self.phase_cpu_start[event.phase] = time.process_time()
        elif isinstance(event, PhaseFinished):
            phase = event.phase
            self.phase_seconds[phase] = now - self.phase_start[phase]
            self.phase_cpu_seconds[phase] = time.process_time() - self.phase_cpu_start[phase]
        elif isinstance(event, Epoch) and event.phase in self._last:
            self.epoch_seconds.setdefault(event.phase, []).append(now - self._last[event.phase])
            self._last[event.phase] = now
        elif isinstance(event, Log):
            self.logs.append(event.message)


def timed_kd_recipe(config: RunConfig, epochs: int) -> RunConfig:
    """The training recipe the timing benches share: a one-epoch teacher, SGD with Nesterov
    momentum and a cosine schedule for `epochs`, Hinton KD (T = 4, weights 0.5 / 0.5), no
    baseline phase and no teacher-output cache (the teacher runs every step)."""
    config.teacher.epochs = 1
    config.optim.name, config.optim.lr, config.optim.momentum = "sgd", 0.05, 0.9
    config.optim.schedule, config.optim.epochs = "cosine", epochs
    d = config.distill
    d.method, d.temperature, d.ce_weight, d.kd_weight = "kd", 4.0, 0.5, 0.5
    d.baseline, d.cache_teacher = False, False
    return config
