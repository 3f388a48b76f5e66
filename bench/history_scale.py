"""History and compare views at scale: 1,000 runs x 10,000 metric rows (10 million rows).

Times (goals in brackets):
- opening the history view: construct, load every run, show, first paint  [<= 0.3 s]
- drawing a 10-run compare: set_runs(10 ids) to painted curves, tables, Pareto  [<= 0.5 s]
- and, for context, one poll tick of the history timer and opening the compare view.

The database is generated once (about a minute and ~1 GB) and reused while its counts fit.
Prints a Markdown table and writes it to bench/results/history_scale.md.

    python bench/history_scale.py [--db PATH] [--runs 1000] [--rows 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kdstudio.core.store import Store  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DATASETS = ("digits", "mnist1d", "synthetic", "fashion-mnist")
STUDENTS = ((8,), (16,), (32,), (64,), (32, 16))
STEPS_PER_EPOCH, EPOCHS = 76, 10


def run_config(i: int, rng: random.Random) -> dict:
    """Configs in families of three seeds, so seed grouping has something to group."""
    family = i // 3
    frng = random.Random(family)
    hidden = list(frng.choice(STUDENTS))
    return {
        "name": f"sweep-{family:04d}", "seed": i % 3, "device": "cpu",
        "data": {"dataset": frng.choice(DATASETS), "batch_size": 64, "val_fraction": 0.1},
        "teacher": {"arch": "cnn", "params": {"channels": [32, 64]}, "epochs": EPOCHS},
        "student": {"arch": "mlp", "params": {"hidden_sizes": hidden}},
        "distill": {"method": frng.choice(("kd", "kd", "dkd", "fitnets")),
                    "temperature": frng.choice((1.0, 2.0, 4.0, 8.0)),
                    "ce_weight": 0.5, "kd_weight": 0.5, "feature_weight": 0.0},
        "optim": {"name": "sgd", "lr": frng.choice((0.01, 0.05, 0.1)), "epochs": EPOCHS},
    }


def metric_rows(run_id: int, rows: int, rng: random.Random, start: float) -> list[tuple]:
    """About `rows` rows shaped like a real run: per-step losses, per-epoch validation."""
    out: list[tuple] = []
    wall = start
    for phase, step_names, epoch_names in (
        ("teacher", ("loss/ce", "loss/total", "lr", "samples_per_s"),
         ("train/loss", "train/acc", "val/loss", "val/acc")),
        ("baseline", ("loss/ce", "loss/total", "lr", "samples_per_s"),
         ("train/loss", "train/acc", "val/loss", "val/acc", "val/agreement", "val/kl")),
        ("student", ("loss/ce", "loss/kd", "loss/total", "lr", "samples_per_s"),
         ("train/loss", "train/acc", "val/loss", "val/acc", "val/agreement", "val/kl")),
    ):
        ceiling = rng.uniform(0.85, 0.99)
        step = 0
        for epoch in range(1, EPOCHS + 1):
            for _ in range(STEPS_PER_EPOCH):
                step += 1
                wall += 0.01
                loss = 2.3 * (0.97 ** step) + rng.uniform(0, 0.05)
                values = {"loss/ce": loss, "loss/kd": loss * 0.4, "loss/total": loss * 1.2,
                          "lr": 0.05, "samples_per_s": rng.uniform(4000, 6000)}
                out += [(run_id, phase, step, epoch, name, values[name], wall)
                        for name in step_names]
            acc = ceiling * (1 - 0.6 ** epoch)
            values = {"train/loss": 1 - acc, "train/acc": acc, "val/loss": 1.05 - acc,
                      "val/acc": acc - 0.01, "val/agreement": acc, "val/kl": 0.1}
            out += [(run_id, phase, step, epoch, name, values[name], wall)
                    for name in epoch_names]
        out.append((run_id, phase, step, EPOCHS, "test/acc", ceiling - 0.02, wall))
    extra = len(out) - rows  # trim per-step throughput rows to hit `rows` exactly
    if extra > 0:
        drop = {i for i, row in enumerate(out) if row[4] == "samples_per_s"}
        drop = set(sorted(drop)[:extra])
        out = [row for i, row in enumerate(out) if i not in drop]
    return out


def build(db: Path, runs: int, rows: int) -> float:
    started = time.perf_counter()
    db.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    rng = random.Random(0)
    with Store(db) as store:
        base = time.time() - runs * 600
        for i in range(runs):
            config = run_config(i, rng)
            status = "completed" if i % 50 else rng.choice(("failed", "stopped", "interrupted"))
            run_id = store.create_run(config, teacher_params=421_642,
                                      student_params=sum(config["student"]["params"]
                                                         ["hidden_sizes"]) * 800,
                                      student_size_mb=0.05, teacher_size_mb=1.69,
                                      compression=421_642 / (sum(config["student"]["params"]
                                                                 ["hidden_sizes"]) * 800))
            batch = metric_rows(run_id, rows, rng, base + i * 600)
            store.add_metric_rows(batch)  # written with the run's end, in one transaction
            student, baseline = rng.uniform(0.8, 0.97), rng.uniform(0.78, 0.95)
            store.finish_run(run_id, status, None if status == "completed" else "bench",
                             student_test_acc=student, baseline_test_acc=baseline,
                             teacher_test_acc=rng.uniform(0.95, 0.99), kd_gain=student - baseline,
                             student_best_val_acc=student, student_last_val_acc=student - 0.005,
                             duration_s=rng.uniform(20, 600),
                             tags=["bench"] + (["best"] if student > 0.95 else []))
        store.analyze()
    return time.perf_counter() - started


def counts(db: Path) -> tuple[int, int]:
    if not db.exists():
        return 0, 0
    with Store(db) as store:
        counted = store.table_counts()
    return counted["runs"], counted["metrics"]


def measure(db: Path, repeat: int) -> dict[str, list[float]]:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from kdstudio.gui.compare.view import CompareView
    from kdstudio.gui.history.view import HistoryView

    times: dict[str, list[float]] = {"history": [], "poll": [], "compare_open": [],
                                     "compare10": [], "compare10_steps": []}
    for _ in range(repeat):
        began = time.perf_counter()
        view = HistoryView(db)
        view.resize(1400, 700)
        view.show()
        app.processEvents()
        times["history"].append(time.perf_counter() - began)
        began = time.perf_counter()
        view.poll()
        times["poll"].append(time.perf_counter() - began)
        view.timer.stop()
        view.close()
        view.deleteLater()
        app.processEvents()
    compare = CompareView(db)
    compare.resize(1400, 820)
    began = time.perf_counter()
    compare.show()
    app.processEvents()
    times["compare_open"].append(time.perf_counter() - began)
    with Store(db) as store:
        ids = [run["id"] for run in store.list_runs()]
    rng = random.Random(1)
    for _ in range(repeat):
        chosen = rng.sample(ids, 10)
        began = time.perf_counter()
        compare.set_runs(chosen)
        app.processEvents()
        times["compare10"].append(time.perf_counter() - began)
        assert len(compare.curve_items()) == 10, "a 10-run compare must draw 10 curves"
    compare.metric_box.setCurrentText("loss/total")  # a per-step metric: ~760 points a run
    for _ in range(repeat):
        chosen = rng.sample(ids, 10)
        began = time.perf_counter()
        compare.set_runs(chosen)
        app.processEvents()
        times["compare10_steps"].append(time.perf_counter() - began)
        assert len(compare.curve_items()) == 10
    compare.close()
    return times


def table(times: dict[str, list[float]], runs: int, rows: int, build_s: float | None) -> str:
    labels = {"history": ("Open the history view (construct, load, show, paint)", 0.3),
              "compare10": ("Draw a 10-run compare of val/acc (set_runs to painted)", 0.5),
              "compare10_steps": ("Same with a per-step metric (loss/total, ~7,600 points)",
                                  None),
              "poll": ("One poll tick of the history timer (no change)", None),
              "compare_open": ("Open the compare view (lists every run)", None)}
    lines = [f"History scale: {runs:,} runs x {rows // max(runs, 1):,} metric rows "
             f"({rows:,} rows)", "",
             "| measurement | median (s) | min (s) | max (s) | goal (s) | met |",
             "|---|---|---|---|---|---|"]
    for key in ("history", "compare10", "compare10_steps", "poll", "compare_open"):
        label, goal = labels[key]
        values = times[key]
        median = statistics.median(values)
        met = "-" if goal is None else ("yes" if median <= goal else "no")
        lines.append(f"| {label} | {median:.3f} | {min(values):.3f} | {max(values):.3f} | "
                     f"{'-' if goal is None else goal} | {met} |")
    from PySide6 import __version__ as pyside

    lines += ["", f"{len(times['history'])} repeats; Python {platform.python_version()}, "
              f"PySide6 {pyside}, {os.cpu_count()} CPU cores, Qt platform "
              f"{os.environ.get('QT_QPA_PLATFORM')}. Timings on a shared machine are noisy."]
    if build_s is not None:
        lines.append(f"Database generated in {build_s:.0f} s.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path,
                        default=Path(tempfile.gettempdir()) / "kdstudio-bench" / "history.db")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=10_000, help="metric rows per run")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    build_s = None
    if counts(args.db) != (args.runs, args.runs * args.rows):
        print(f"Generating {args.runs:,} runs x {args.rows:,} rows in {args.db} ...",
              flush=True)
        build_s = build(args.db, args.runs, args.rows)
    runs, rows = counts(args.db)
    text = table(measure(args.db, args.repeat), runs, rows, build_s)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "history_scale.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
