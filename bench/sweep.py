"""A 12-trial sweep on the local backend: 1 worker against 2 workers.

The grid is distill.temperature x 3, distill.kd_weight x 2, seed x 2 over a preset (default
digits-kd, few epochs so that one trial takes a few seconds). Each worker count runs the
whole sweep into a fresh history; the wall time is from `run_sweep`'s call to its return.
Teacher trainings are counted from the history (runs whose config trained a teacher).
The load average is printed before and after: on a shared machine it says how much
other programs took.

    python bench/sweep.py                      # ~3 minutes on 2 cores
    python bench/sweep.py --epochs 10 --workers 1 2
    python bench/sweep.py --teacher-epochs 15 --epochs 300 --repeats 3   # trials of ~5 s

A sweep's worker processes take about 2 s to import torch, once whatever their number, so
the shorter the trials, the more that start weighs against the speed-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, write_result  # noqa: E402

from kdstudio.core.store import Store  # noqa: E402
from kdstudio.core.sweep import run_sweep, sweep_from_dict  # noqa: E402


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def one_sweep(args: argparse.Namespace, workers: int, folder: Path) -> dict[str, float]:
    spec = sweep_from_dict({
        "base": args.preset, "name": "bench-sweep",
        "axes": {"distill.temperature": [2.0, 4.0, 8.0], "distill.kd_weight": [0.5, 0.9],
                 "seed": [0, 1]},
        "set": {"teacher.epochs": args.teacher_epochs, "optim.epochs": args.epochs,
                "device": "cpu"}})
    db = folder / f"workers{workers}.db"
    before = load()
    started = time.perf_counter()
    result = run_sweep(spec, db, workers=workers)
    wall = time.perf_counter() - started
    with Store(db) as store:
        runs = store.runs_in_group(result.group_id)
    trained = sum(1 for run in runs if run["config"]["teacher"]["epochs"] > 0)
    durations = [run["summary"].get("duration_s", 0.0) for run in runs]
    print(f"{workers} worker(s): {wall:.1f} s, {result.completed}/{len(runs)} completed, "
          f"{trained} teacher training(s); load {before} -> {load()}", flush=True)
    return {"wall": wall, "completed": result.completed, "trials": len(runs),
            "teachers": trained, "trial_s": sum(durations) / max(len(durations), 1),
            "load_before": before, "load_after": load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="digits-kd")
    parser.add_argument("--epochs", type=int, default=8, help="baseline and student epochs")
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds over the worker counts, every other one in reverse order")
    args = parser.parse_args()
    measured: list[tuple[int, int, dict[str, float]]] = []  # (round, workers, result)
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeats):
            order = args.workers if round_ % 2 == 0 else args.workers[::-1]
            for w in order:
                folder = Path(tmp) / f"round{round_}"
                folder.mkdir(exist_ok=True)
                measured.append((round_, w, one_sweep(args, w, folder)))
    first = args.workers[0]
    rows = []
    for round_, w, r in measured:
        reference = next(x["wall"] for n, v, x in measured if n == round_ and v == first)
        rows.append([str(round_ + 1), str(w), f"{r['wall']:.1f}",
                     f"{reference / r['wall']:.2f}x", f"{r['completed']}/{r['trials']}",
                     str(r["teachers"]), f"{r['trial_s']:.1f}",
                     f"{r['load_before']} / {r['load_after']}"])
    means = {w: statistics.fmean(r["wall"] for _, v, r in measured if v == w)
             for w in args.workers}
    summary = ", ".join(f"{w} worker(s) {means[w]:.1f} s ({means[first] / means[w]:.2f}x)"
                        for w in args.workers)
    body = (f"12-trial grid over `{args.preset}` (temperature 2/4/8 x kd_weight 0.5/0.9 x "
            f"seed 0/1; teacher {args.teacher_epochs} epochs, baseline and student "
            f"{args.epochs} epochs each), local backend, 1 thread per trial; {args.repeats} "
            f"round(s), every other one in reverse order. Mean wall: {summary}.\n\n"
            + table(["round", "workers", "wall (s)", "speed-up (same round)", "completed",
                     "teacher trainings", "mean run time (s)", "load average before / after"],
                    rows))
    write_result("sweep", "Sweep: 1 worker against 2 (local backend)", body)


if __name__ == "__main__":
    main()
