"""What the resumable checkpoint written at every epoch end costs: time per checkpoint, its
size, and whole runs with and without it (alternating, median of `--repeats`).

    PYTHONPATH=. python bench/resume_cost.py [--repeats 3] [--configs digits-kd,resnet]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kdstudio.core import engine
from kdstudio.core.config import RunConfig, config_from_dict
from kdstudio.core.engine import loop
from kdstudio.core.presets import load_preset
from kdstudio.core.store import Store


def configs() -> dict[str, RunConfig]:
    digits, _ = config_from_dict(load_preset("digits-kd") | {"device": "cpu"})
    resnet = digits.copy()
    resnet.name = "digits-resnet"
    resnet.teacher.arch, resnet.teacher.params = "resnet8x4", {}
    resnet.student.arch, resnet.student.params = "resnet", {"depth": 8, "width": 1}
    resnet.teacher.epochs = resnet.optim.epochs = 3
    return {"digits-kd": digits, "resnet": resnet}


class Timed:
    """Wraps `engine.loop.write_checkpoint` to time each call (or to skip it)."""

    def __init__(self) -> None:
        self.original = loop.write_checkpoint
        self.seconds: list[float] = []
        self.sizes: list[int] = []
        self.skip = False

    def __call__(self, run: Any, *args: Any) -> None:
        if self.skip:
            return
        started = time.perf_counter()
        self.original(run, *args)
        self.seconds.append(time.perf_counter() - started)
        self.sizes.append(run.checkpoints.last_bytes)


def measure(config: RunConfig, repeats: int, folder: Path) -> dict[str, float]:
    timed = Timed()
    loop.write_checkpoint = lambda run, *args: timed(run, *args)  # type: ignore
    durations: dict[bool, list[float]] = {True: [], False: []}
    epochs = 0
    try:
        with Store(folder / f"{config.name}.db") as store:
            for _ in range(repeats):
                for checkpoints in (True, False):
                    timed.skip = not checkpoints
                    result = engine.run(config, store)
                    assert result.status == "completed", result.error
                    durations[checkpoints].append(result.summary["duration_s"])
                    epochs = sum(p["epochs"] for p in store.get_run(result.run_id)["plan"])
    finally:
        loop.write_checkpoint = timed.original  # type: ignore[assignment]
    with_, without = statistics.median(durations[True]), statistics.median(durations[False])
    return {"epochs": epochs, "checkpoint_ms": 1000 * statistics.median(timed.seconds),
            "size_mb": max(timed.sizes) / 1e6, "epoch_s": without / epochs,
            "run_with_s": with_, "run_without_s": without,
            "overhead_pct": 100 * (with_ / without - 1),
            "share_pct": 100 * sum(timed.seconds) / repeats / without}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", default="digits-kd,resnet")
    args = parser.parse_args()
    available = configs()
    print("| config | epochs | checkpoint (ms, median) | size (MB, largest) | epoch (s) | "
          "run with (s) | run without (s) | with / without | checkpoint time / run |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.configs.split(","):
            r = measure(available[name], args.repeats, Path(folder))
            print(f"| {name} | {r['epochs']} | {r['checkpoint_ms']:.1f} | {r['size_mb']:.2f} | "
                  f"{r['epoch_s']:.3f} | {r['run_with_s']:.2f} | {r['run_without_s']:.2f} | "
                  f"{r['overhead_pct']:+.1f} % | {r['share_pct']:.2f} % |")


if __name__ == "__main__":
    main()
