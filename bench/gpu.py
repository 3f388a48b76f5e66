"""CUDA check: every distillation method end to end on the GPU with autocast off and on,
and the autocast speed-up of a ResNet student phase (pinned-memory, non-blocking copies
are always on for CUDA).

    python bench/gpu.py --fashion-path /usr/share/datasets/fashion-mnist

Methods: the MNIST-1D presets (and Fashion-MNIST few-labels is left out: its data is
large), with epochs cut to `--method-epochs`. Speed: Fashion-MNIST, resnet32x4 teacher ->
resnet8x4 student, Hinton KD, teacher-output cache off so the teacher runs every step;
float32 and autocast runs alternate, and the table gives medians of the student phase.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PhaseClock, table, timed_kd_recipe, write_result  # noqa: E402

from kdstudio.core.config import RunConfig, config_from_dict, read_toml  # noqa: E402
from kdstudio.core.engine import run  # noqa: E402
from kdstudio.core.paths import SOURCE_PRESETS  # noqa: E402
from kdstudio.core.store import Store  # noqa: E402


def precision_line(logs: list[str]) -> str:
    for line in logs:
        if "autocast" in line.lower() or "float" in line.lower():
            return line
    return "float32"


def methods_check(store: Store, device: str, epochs: int) -> list[list[Any]]:
    rows = []
    for preset in sorted(SOURCE_PRESETS.glob("*mnist1d*.toml")):
        config, problems = config_from_dict(read_toml(preset))
        assert not problems, problems
        config.device = device
        config.teacher.epochs = min(config.teacher.epochs, epochs)
        config.optim.epochs = min(config.optim.epochs, epochs)
        for autocast in (False, True):
            config.autocast = autocast
            clock = PhaseClock()
            started = time.perf_counter()
            result = run(config, store, clock)
            seconds = time.perf_counter() - started
            summary = result.summary
            rows.append([preset.stem, config.distill.method, "on" if autocast else "off",
                         result.status, precision_line(clock.logs) if autocast else "float32",
                         f"{summary.get('student_test_acc', float('nan')):.2%}",
                         f"{summary.get('baseline_test_acc', float('nan')):.2%}",
                         f"{seconds:.1f}", (result.error or "")[:80]])
            print(" | ".join(str(cell) for cell in rows[-1]), flush=True)
    return rows


def speed_config(fashion_path: str, device: str, train_limit: int, epochs: int,
                 batch: int, teacher: str, student: str) -> RunConfig:
    config = RunConfig(name="cuda-speed", seed=0, device=device)
    config.data.dataset, config.data.path = "fashion-mnist", fashion_path
    config.data.params = {"train_limit": train_limit}
    config.data.batch_size = batch
    config.teacher.arch, config.student.arch = teacher, student
    return timed_kd_recipe(config, epochs)


def speed_check(store: Store, config: RunConfig, repeats: int) -> list[list[Any]]:
    first = run(config, store)  # trains the teacher once in float32
    assert first.status == "completed", first.error
    config.teacher.checkpoint = store.artifacts(first.run_id, "teacher")[0]["path"]
    config.teacher.epochs = 0
    samples = config.data.params["train_limit"] * config.optim.epochs
    results: dict[bool, dict[str, list[float]]] = {
        flag: {"rate": [], "acc": []} for flag in (False, True)}
    message = ""
    for repeat in range(repeats + 1):  # the first pair warms up kernels and caches
        for autocast in ((False, True) if repeat % 2 == 0 else (True, False)):
            config.autocast = autocast
            clock = PhaseClock()
            result = run(config, store, clock)
            assert result.status == "completed", result.error
            if autocast:
                message = precision_line(clock.logs)
            if repeat:
                results[autocast]["rate"].append(samples / clock.phase_seconds["student"])
                results[autocast]["acc"].append(result.summary["student_test_acc"])
            print(f"autocast {autocast}: {samples / clock.phase_seconds['student']:,.0f} "
                  f"samples/s", flush=True)
    fp32 = statistics.median(results[False]["rate"])
    mixed = statistics.median(results[True]["rate"])
    return [[f"fashion-mnist {samples // config.optim.epochs:,} x {config.optim.epochs}",
             config.data.batch_size, repeats, f"{fp32:,.0f}", f"{mixed:,.0f}",
             f"**{mixed / fp32:.2f}x**", message,
             f"{statistics.median(results[False]['acc']):.2%} / "
             f"{statistics.median(results[True]['acc']):.2%}"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--fashion-path", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--method-epochs", type=int, default=3)
    parser.add_argument("--train-limit", type=int, default=30000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--teacher", default="resnet32x4")
    parser.add_argument("--student", default="resnet8x4")
    parser.add_argument("--skip-methods", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else args.device
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "cuda.db")
        method_rows = [] if args.skip_methods else methods_check(
            store, args.device, args.method_epochs)
        speed_rows = speed_check(store, speed_config(args.fashion_path, args.device,
                                                     args.train_limit, args.epochs,
                                                     args.batch, args.teacher, args.student),
                                 args.repeats)
        store.close()
    parts = [f"Device: {name}, torch {torch.__version__}"]
    if method_rows:
        parts += ["### Every method end to end (MNIST-1D presets, epochs cut to "
                  f"{args.method_epochs})",
                  table(["preset", "method", "autocast", "status", "precision",
                         "student + KD test acc", "student alone test acc", "run s",
                         "error"], method_rows)]
    parts += [f"### Autocast speed-up (student phase of Hinton KD, {args.teacher} -> "
              f"{args.student}, teacher runs every step)",
              table(["data", "batch", "repeats", "float32 samples/s", "autocast samples/s",
                     "speed-up", "precision", "test acc float32 / autocast"], speed_rows)]
    write_result("gpu", "CUDA: methods, autocast speed-up", "\n\n".join(parts))


if __name__ == "__main__":
    main()
