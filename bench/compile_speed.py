"""Student-phase throughput, eager against compile = true, on MNIST-1D and Fashion-MNIST.

Eager and compiled runs alternate (the same seed and recipe as bench/overhead.py); the
throughput is the median of the student phase's per-step samples/s after its first epoch
(which holds the compilation), and the compile time is the one the run logs.

    python bench/compile_speed.py --threads 1 --repeats 2
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import PhaseClock, add_data_options, apply_threads, table, write_result  # noqa: E402
from bench.overhead import bench_config  # noqa: E402
from kdstudio.core.engine import run  # noqa: E402
from kdstudio.core.store import Store  # noqa: E402

DEFAULT_EPOCHS = {"mnist1d": 4, "fashion-mnist": 2}
COMPILED_LINE = re.compile(r"Compiled the student's forward pass in ([0-9.]+) s")


def student_throughput(dataset: str, epochs: int, subset: int, compiled: bool,
                       store: Store) -> tuple[float, float | None]:
    """(median student samples/s after epoch 1, logged compile seconds or None)."""
    config = bench_config(dataset, epochs, subset)
    config.compile = compiled
    clock = PhaseClock()
    result = run(config, store, clock)
    if result.status != "completed":
        raise SystemExit(f"{dataset}: run failed: {result.error}")
    rows = store.metrics(result.run_id, name="samples_per_s", phase="student")
    steady = [r["value"] for r in rows if r["epoch"] > 1] or [r["value"] for r in rows]
    seconds = next((float(m.group(1)) for line in clock.logs
                    if (m := COMPILED_LINE.search(line))), None)
    return statistics.median(steady), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_options(parser, repeats=2, epochs_help="student epochs (0 = per dataset)")
    args = parser.parse_args()
    apply_threads(args)
    rows = []
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "h.db") as store:
        for dataset in args.datasets:
            epochs = args.epochs or DEFAULT_EPOCHS[dataset]
            eager, compiled, compile_s = [], [], []
            for _ in range(args.repeats):  # alternated: drift in the machine's load hits both
                eager.append(student_throughput(dataset, epochs, args.subset, False, store)[0])
                speed, seconds = student_throughput(dataset, epochs, args.subset, True, store)
                compiled.append(speed)
                if seconds is not None:
                    compile_s.append(seconds)
            ratios = [c / e for c, e in zip(compiled, eager, strict=True)]
            rows.append((dataset, f"{statistics.median(eager):,.0f}",
                         f"{statistics.median(compiled):,.0f}",
                         f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
                         f"{statistics.median(compile_s):.1f}" if compile_s else "-"))
            print(rows[-1], flush=True)
    body = table(["dataset", "eager samples/s", "compiled samples/s",
                  "compiled / eager (range)", "compile s"], rows)
    body += (f"\n\nMedian per-step student samples/s after the first epoch, {args.repeats} "
             "alternated eager/compiled pairs per dataset; the range is over the pairs. "
             "The machine is shared with other jobs, so single figures can move by 10-20%.")
    write_result("compile", "compile = true against eager: student-phase throughput (CPU)", body)


if __name__ == "__main__":
    main()
