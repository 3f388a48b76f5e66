"""What the compare view draws, computed without Qt: curves, seed groups, config
differences, summary values and the Pareto front. The view only turns these into widgets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kdstudio.core.run_table import flatten
from kdstudio.core.store import iso_seconds

PHASE_ORDER = ("teacher", "baseline", "student")
X_MODES = ("step", "epoch", "wall time")
SEED_KEYS = ("name", "seed", "device")  # keys that may differ within a seed group
LOWER_IS_BETTER = ("loss", "kl")


def lower_is_better(metric: str) -> bool:
    return any(part in metric for part in LOWER_IS_BETTER)


def best_of(metric: str, values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    return min(finite) if lower_is_better(metric) else max(finite)


# ---------------------------------------------------------------- curves


@dataclass
class Series:
    """One curve: a run's metric in one phase (or in all phases end to end)."""

    run_id: int
    phase: str
    x: np.ndarray
    y: np.ndarray


def build_series(rows: Iterable[Sequence[Any]], x_mode: str, phase: str,
                 started: dict[int, str | None]) -> list[Series]:
    """Curves from `Store.metric_rows` rows (run_id, phase, step, epoch, value, wall_time).

    x is the phase's step, its epoch (fractional for per-step metrics: step / steps per
    epoch) or seconds since the run started. With phase 'all' one curve per run runs
    through teacher, baseline and student end to end (steps and epochs offset by the
    phases before).
    """
    if x_mode not in X_MODES:
        raise ValueError(f"x axis must be one of {', '.join(X_MODES)} (got {x_mode!r})")
    by_run_phase: dict[tuple[int, str], list[Sequence[Any]]] = {}
    for row in rows:
        if phase != "all" and row[1] != phase:
            continue
        by_run_phase.setdefault((row[0], row[1]), []).append(row)
    out: list[Series] = []
    run_ids = list(dict.fromkeys(key[0] for key in by_run_phase))
    for run_id in run_ids:
        phases = [p for p in PHASE_ORDER if (run_id, p) in by_run_phase]
        phases += sorted(p for (r, p) in by_run_phase if r == run_id and p not in phases)
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        offset = 0.0
        for name in phases:
            data = np.array([(r[2], r[3], r[4], r[5]) for r in by_run_phase[(run_id, name)]],
                            dtype=float).reshape(-1, 4)
            step, epoch, value, wall = data.T
            if x_mode == "step":
                x = step + offset
                offset = float(x.max()) if len(x) else offset
            elif x_mode == "epoch":
                first_epoch = step[epoch == 1]
                per_epoch = first_epoch.max() if len(first_epoch) else 0.0
                x = step / per_epoch if per_epoch > 0 else epoch.copy()
                x = x + offset
                offset = float(x.max()) if len(x) else offset
            else:
                origin = iso_seconds(started.get(run_id))
                x = wall - (origin if origin is not None else float(wall.min()))
            xs.append(x)
            ys.append(value)
            if phase != "all":
                out.append(Series(run_id, name, x, value))
        if phase == "all" and xs:
            out.append(Series(run_id, "all", np.concatenate(xs), np.concatenate(ys)))
    return out


def mean_std(series: Sequence[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point-wise mean and standard deviation of curves, cut to the shortest; x is averaged."""
    length = min(len(s.y) for s in series)
    x = np.mean([s.x[:length] for s in series], axis=0)
    ys = np.array([s.y[:length] for s in series])
    return x, ys.mean(axis=0), ys.std(axis=0)


# ---------------------------------------------------------------- seed groups


def seed_group_key(config: dict[str, Any]) -> str:
    """Two runs with the same key differ only in seed (and name or device)."""
    rest = {k: v for k, v in config.items() if k not in SEED_KEYS}
    return json.dumps(rest, sort_keys=True, default=str)


def group_by_seed(runs: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Runs grouped when their configs differ only in seed; groups in first-seen order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(seed_group_key(run["config"]), []).append(run)
    return list(groups.values())


# ---------------------------------------------------------------- config differences


@dataclass
class ConfigDiff:
    keys: list[str]
    values: list[list[str]]  # one row per key, one column per run
    differs: list[bool] = field(default_factory=list)


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def config_diff(configs: Sequence[dict[str, Any]], differences_only: bool) -> ConfigDiff:
    """Every flattened config key with each run's value; missing keys show as '-'."""
    flat = [flatten(c) for c in configs]
    keys: list[str] = []
    for item in flat:
        keys += [k for k in item if k not in keys]
    diff = ConfigDiff([], [], [])
    for key in keys:
        row = [format_value(item.get(key)) for item in flat]
        differs = len(set(row)) > 1
        if differences_only and not differs:
            continue
        diff.keys.append(key)
        diff.values.append(row)
        diff.differs.append(differs)
    return diff


# ---------------------------------------------------------------- Pareto front


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points not beaten by another that is no larger and at least as accurate,
    ordered by size (x: smaller is better, y: larger is better)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def mean_and_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None
    return float(np.mean(finite)), float(np.std(finite))
