"""The runs table as values: which names a run has (its summary columns and its config's
key paths), their values in the units the history shows, and groups with mean ± std.

A name is first a column of the run's row (summary metrics, seed, dataset, ...), otherwise
a key path into its config (`distill.temperature`). Accuracies and `kd_gain` are in percent
points, as the table shows them (`kd_gain > 1`: more than one point of gain).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kdstudio.core.run_query import MISSING

# Summary columns of a run row that can be shown and filtered on, with what they are.
SUMMARY_FIELDS: dict[str, str] = {
    "student_test_acc": "Test accuracy of the distilled student (%)",
    "student_best_val_acc": "Best validation accuracy of the distilled student (%)",
    "student_last_val_acc": "Last validation accuracy of the distilled student (%)",
    "baseline_test_acc": "Test accuracy of the student trained alone (%)",
    "baseline_best_val_acc": "Best validation accuracy of the student trained alone (%)",
    "baseline_last_val_acc": "Last validation accuracy of the student trained alone (%)",
    "teacher_test_acc": "Test accuracy of the teacher (%)",
    "teacher_best_val_acc": "Best validation accuracy of the teacher (%)",
    "teacher_last_val_acc": "Last validation accuracy of the teacher (%)",
    "kd_gain": "Student test accuracy minus baseline test accuracy (percent points)",
    "compression": "Teacher parameters / student parameters",
    "teacher_params": "Parameters of the teacher",
    "student_params": "Parameters of the student",
    "teacher_size_mb": "Size of the teacher's weights (MB)",
    "student_size_mb": "Size of the student's weights (MB)",
    "duration_s": "Wall time of the whole run (seconds)",
}
# Other columns of a run row a filter or a group can use.
ROW_FIELDS: dict[str, str] = {
    "id": "Run id", "name": "Run name", "status": "Run status", "seed": "Random seed",
    "dataset": "Dataset", "teacher_arch": "Teacher architecture",
    "student_arch": "Student architecture", "method": "Distillation method",
    "temperature": "Distillation temperature", "ce_weight": "Weight of the CE loss",
    "kd_weight": "Weight of the KD loss", "feature_weight": "Weight of the feature loss",
    "device": "Device the run trained on", "group_id": "Sweep or group the run belongs to",
    "created_at": "When the run started (UTC, ISO 8601)",
}
RUN_FIELDS = {**ROW_FIELDS, **SUMMARY_FIELDS}


def is_percent(name: str) -> bool:
    return name == "kd_gain" or name.endswith("_acc")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay values, an empty table is a value."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out |= flatten(value, path)
        else:
            out[path] = value
    return out


def run_value(run: Mapping[str, Any], flat_config: Mapping[str, Any], name: str) -> Any:
    """A run's value of `name` in table units, or MISSING."""
    if name in RUN_FIELDS:
        value = run.get(name)
        if value is None:
            return MISSING
        if is_percent(name) and isinstance(value, (int, float)):
            return round(value * 100, 9)  # 0.91 - 0.90 is 1 point, not 1.0000000000000009
        return value
    return flat_config.get(name, MISSING)


def key_paths(flat_configs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every config key path of the runs, sorted."""
    keys: set[str] = set()
    for flat in flat_configs:
        keys.update(flat)
    return sorted(keys)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def mean_std(values: Iterable[Any]) -> tuple[float | None, float | None, int]:
    """Mean and (population) standard deviation of the finite numbers, and their count."""
    finite = [float(v) for v in values if is_number(v) and math.isfinite(v)]
    if not finite:
        return None, None, 0
    mean = sum(finite) / len(finite)
    spread = math.sqrt(sum((v - mean) ** 2 for v in finite) / len(finite))
    return mean, spread, len(finite)


@dataclass
class Group:
    """Runs sharing one value of the grouping key; stats: name -> (mean, std, count)."""

    value: Any
    rows: list[int]
    stats: dict[str, tuple[float | None, float | None, int]] = field(default_factory=dict)


def numbers(values: Sequence[Any]) -> np.ndarray:
    """Values as floats, NaN where a value is missing or not a number."""
    return np.array([v if type(v) in (int, float) else math.nan for v in values], dtype=float)


def group_rows(keys: Sequence[Any], columns: Mapping[str, Sequence[Any]]) -> list[Group]:
    """Rows grouped by their value in `keys` (MISSING for none), in the order of the sorted
    values (missing last), with mean ± std of each of `columns` (a value per row)."""
    groups: dict[str, Group] = {}
    for i, value in enumerate(keys):
        groups.setdefault(_label(value), Group(value, [])).rows.append(i)
    arrays = {name: numbers(values) for name, values in columns.items()}
    for group in groups.values():
        index = np.array(group.rows)
        for name, array in arrays.items():
            picked = array[index]
            finite = picked[np.isfinite(picked)]
            group.stats[name] = ((float(finite.mean()), float(finite.std()), int(finite.size))
                                 if finite.size else (None, None, 0))
    return sorted(groups.values(), key=lambda g: _order(g.value))


def _label(value: Any) -> str:
    return "\0missing" if value is MISSING else repr(value)


def _order(value: Any) -> tuple[int, float, str]:
    if value is MISSING or value is None:
        return (2, 0.0, "")
    if is_number(value):
        return (0, float(value), "")
    return (1, 0.0, str(value))
