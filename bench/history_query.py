"""The history's query at scale: 5,000 runs (no metric rows), times to apply an expression
filter, a word filter and a grouping in the History view, and to open it (goal: a filter or
a grouping under ~100 ms).

    python bench/history_query.py [--runs 5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
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


def fill(path: Path, runs: int) -> None:
    rng = random.Random(0)
    with Store(path) as store:
        for i in range(runs):
            config = {"name": f"trial-{i}", "seed": i % 3, "device": "cpu",
                      "data": {"dataset": "digits", "batch_size": 64, "val_fraction": 0.1},
                      "teacher": {"arch": "cnn", "params": {"channels": [32, 64]}, "epochs": 5},
                      "student": {"arch": "mlp", "params": {"hidden_sizes": [32]}},
                      "distill": {"method": "kd", "temperature": rng.choice((1.0, 2.0, 4.0, 8.0)),
                                  "ce_weight": 0.5, "kd_weight": rng.choice((0.25, 0.5, 0.75))},
                      "optim": {"name": "sgd", "lr": rng.choice((0.01, 0.05)), "epochs": 5}}
            run_id = store.create_run(config)
            acc, alone = rng.uniform(0.8, 0.95), rng.uniform(0.8, 0.95)
            store.finish_run(run_id, "completed", student_test_acc=acc, baseline_test_acc=alone,
                             kd_gain=acc - alone)


def timed(action, repeat: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds (CPU time: what this process itself spent, which a
    busy shared machine does not inflate)."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        action()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from PySide6.QtWidgets import QApplication

    from kdstudio.gui.history.view import HistoryView

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "h.db"
        fill(path, args.runs)
        start, start_cpu = time.perf_counter(), time.process_time()
        view = HistoryView(path)
        view.resize(1400, 800)
        view.show()
        app.processEvents()
        opened = ((time.perf_counter() - start) * 1000, (time.process_time() - start_cpu) * 1000)

        def expression() -> None:
            view.search.setText("")
            view.search.setText("kd_gain > 1 and distill.temperature >= 4")
            app.processEvents()

        def words() -> None:
            view.search.setText("")
            view.search.setText("trial-1")
            app.processEvents()

        def group() -> None:
            view.group_runs_by("")
            view.group_runs_by("distill.temperature")
            app.processEvents()

        rows = [("open the view", opened), ("expression filter", timed(expression, args.repeat)),
                ("word filter", timed(words, args.repeat))]
        view.search.setText("")
        rows.append(("group by distill.temperature (all runs)", timed(group, args.repeat)))
        view.close()
    print(f"Load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; each time "
          "includes clearing the previous filter or grouping first.\n")
    print(f"| {args.runs:,} runs | wall ms (median) | CPU ms (median) |\n|---|---|---|")
    for name, (wall, cpu) in rows:
        print(f"| {name} | {wall:.0f} | {cpu:.0f} |")


if __name__ == "__main__":
    main()
