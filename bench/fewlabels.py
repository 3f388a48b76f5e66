"""Few labels: KD gain of the `mnist1d-fewlabels` preset (400 labels + soft targets on all
inputs) over the student trained on the 400 labels alone, mean +- std over seeds.

    python bench/fewlabels.py [--preset mnist1d-fewlabels] [--seeds 0 1 2] [--set k=v ...]

Prints a Markdown table and writes it to bench/results/fewlabels.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from kdstudio.core.config import apply_overrides, load_config
from kdstudio.core.engine import run
from kdstudio.core.presets import load_preset
from kdstudio.core.store import Store

RESULTS = Path(__file__).resolve().parent / "results"


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values) * 100:.1f} ± {spread * 100:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mnist1d-fewlabels")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    rows, results = [], []
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "bench.db") as store:
        for seed in args.seeds:
            data = apply_overrides(load_preset(args.preset), [*args.overrides, f"seed={seed}"])
            started = time.perf_counter()
            result = run(load_config(data), store)
            seconds = time.perf_counter() - started
            if result.status != "completed":
                print(f"seed {seed}: {result.status} {result.error}", file=sys.stderr)
                return 1
            s = result.summary
            results.append(s)
            rows.append([str(seed), f"{s['teacher_test_acc']:.1%}", f"{s['baseline_test_acc']:.1%}",
                         f"{s['student_test_acc']:.1%}", f"{s['kd_gain'] * 100:+.1f}",
                         f"{seconds:.0f} s"])
            print(" | ".join(rows[-1]), flush=True)
    rows.append(["mean ± std", *(mean_std([r[k] for r in results]) for k in
                                 ("teacher_test_acc", "baseline_test_acc", "student_test_acc")),
                 mean_std([r["kd_gain"] for r in results]), ""])
    header = ["seed", "teacher", "student alone (labels only)", "student + KD",
              "KD gain (points)", "wall time"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    title = f"`{args.preset}`" + (f" with {' '.join(args.overrides)}" if args.overrides else "")
    text = f"{title}, test accuracy, seeds {' '.join(map(str, args.seeds))}\n\n" + "\n".join(lines)
    print("\n" + text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fewlabels.md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
