"""Metric rows of any runs as one CSV file (no torch needed)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from kdstudio.core.export.report import ExportError
from kdstudio.core.store import Store

METRIC_COLUMNS = ("run_id", "run_name", "phase", "step", "epoch", "name", "value", "wall_time")


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def export_metrics_csv(store: Store, run_keys: Iterable[str | int], out_path: str | Path) -> int:
    """All metric rows of the runs as one CSV (long format); returns the number of rows."""
    keys = list(run_keys)
    if not keys:
        raise ExportError("name at least one run")
    runs, missing = [], []
    for key in keys:
        run = store.find_run(key)
        (runs.append(run) if run is not None else missing.append(str(key)))
    if missing:
        raise ExportError(f"no run {', '.join(repr(m) for m in missing)} in {store.path}")
    path = Path(out_path).expanduser()
    if path.is_dir():
        raise ExportError(f"--out: {path} is a folder; give a file name such as metrics.csv")
    store.flush()
    count = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(METRIC_COLUMNS)
            for run in runs:
                for row in store.metrics(run["id"]):  # in the order they were written
                    writer.writerow((run["id"], run["name"], row["phase"], row["step"],
                                     row["epoch"], row["name"], _number(row["value"]),
                                     _number(row["wall_time"])))
                    count += 1
    except OSError as error:
        raise ExportError(f"--out: cannot write {path} ({error.strerror or error})") from None
    return count
