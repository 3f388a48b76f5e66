"""The history table's columns: the 19 default ones, and any summary metric, run field or
config key path a user adds; how each one's cells read."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from kdstudio.core.config.tips import TIPS
from kdstudio.core.progress import clock
from kdstudio.core.run_query import MISSING
from kdstudio.core.run_table import RUN_FIELDS, SUMMARY_FIELDS, is_number, is_percent


@dataclass(frozen=True)
class Column:
    key: str  # a default column's key, a run field or a config key path
    header: str
    tip: str
    width: int
    numeric: bool = False
    editable: bool = False
    source: str = "default"  # default | field | config


COLUMNS = [
    Column("id", "ID", "Run id; the swatch is the run's colour in every chart", 54, True),
    Column("name", "Name", "Run name (double-click to edit)", 112, editable=True),
    Column("status", "Status", "completed, stopped, failed, interrupted or running (with the "
           "phase it is in)", 80),
    Column("created_at", "Started", "When the run started, local time", 110),
    Column("duration_s", "Duration", "Wall time of the whole run", 62, True),
    Column("dataset", "Data", "Dataset", 62),
    Column("models", "Teacher → student", "Teacher and student architectures (filter "
           "names: teacher_arch, student_arch)", 104),
    Column("method", "Method", "Distillation method", 56),
    Column("temperature", "T", "Distillation temperature", 32, True),
    Column("weights", "Weights", "Loss weights: ce, kd, feature (filter names: ce_weight, "
           "kd_weight, feature_weight)", 96),
    Column("student_best_val_acc", "Best val", "Best validation accuracy of the distilled "
           "student (live while the run writes)", 58, True),
    Column("student_last_val_acc", "Last val", "Last validation accuracy of the distilled "
           "student (live while the run writes)", 58, True),
    Column("student_test_acc", "Student", "Test accuracy of the distilled student", 58, True),
    Column("baseline_test_acc", "Alone", "Test accuracy of the same student trained without "
           "a teacher (baseline)", 58, True),
    Column("teacher_test_acc", "Teacher", "Test accuracy of the teacher", 58, True),
    Column("kd_gain", "KD gain", "Student test accuracy minus baseline test accuracy, in "
           "points", 56, True),
    Column("compression", "Compression", "Teacher parameters / student parameters", 78, True),
    Column("tags", "Tags", "Comma-separated tags (double-click to edit)", 90, editable=True),
    Column("notes", "Notes", "Free notes (double-click to edit)", 120, editable=True),
]
DEFAULT_KEYS = [c.key for c in COLUMNS]
BUILTIN = {c.key: c for c in COLUMNS}
NUMERIC_FIELDS = {"id", "seed", "temperature", "ce_weight", "kd_weight", "feature_weight",
                  *SUMMARY_FIELDS}


def column_for(key: str, numeric: bool = False) -> Column:
    """The column showing `key`; `numeric` says whether a config key's values are numbers."""
    if key in BUILTIN:
        column = BUILTIN[key]
        if key in RUN_FIELDS:
            units = " (in the filter: percent)" if is_percent(key) else ""
            return Column(**{**column.__dict__,
                             "tip": f"{column.tip}.\nFilter name: {key}{units}"})
        return column
    if key in RUN_FIELDS:
        return Column(key, key, f"{key}: {RUN_FIELDS[key]} (a column of the run's row)", 80,
                      key in NUMERIC_FIELDS, source="field")
    tip = f"Config key {key}: the value in the run's config"
    if key in TIPS:
        tip += f".\n{TIPS[key]}"
    return Column(key, key, tip, 80, numeric, source="config")


def counted(count: int, noun: str) -> str:
    """'1 run', '4 runs', '1,200 runs'."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def local_time(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        return dt.datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def seconds_since(iso: str | None) -> float | None:
    try:
        return time.time() - dt.datetime.fromisoformat(iso).timestamp() if iso else None
    except ValueError:
        return None


def duration_text(seconds: float | None) -> str:
    return "-" if seconds is None or not math.isfinite(seconds) else clock(seconds)


def _num(value: Any, pattern: str) -> str:
    return pattern.format(value) if isinstance(value, (int, float)) else "-"


def config_text(value: Any) -> str:
    """A config value as a cell shows it."""
    if value is MISSING or value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def field_text(key: str, value: Any) -> str:
    """A run row's value as its cell shows it (accuracies in %, kd_gain in points)."""
    if key.endswith("_acc"):
        return _num(value, "{:.2%}")
    if key == "kd_gain":
        return _num(None if value is None else value * 100, "{:+.2f}")
    if key == "compression":
        return _num(value, "{:.1f}×")
    if key.endswith("_params"):
        return _num(value, "{:,}")
    if key == "duration_s":
        return duration_text(value)
    if key == "created_at":
        return local_time(value)
    return config_text(value)


def builtin_text(run: dict[str, Any], key: str) -> str:
    """The text of a default column's cell."""
    value = run.get(key)
    if key == "status":
        phase = run.get("live_phase")
        return f"running · {phase}" if value == "running" and phase else value
    if key == "duration_s" and run["status"] == "running":
        return duration_text(seconds_since(run.get("created_at")))
    if key == "models":
        return f"{run.get('teacher_arch') or '-'} → {run.get('student_arch') or '-'}"
    if key == "temperature":
        return _num(value, "{:g}")
    if key == "weights":
        parts = [f"{label} {run[field]:g}" for label, field in
                 (("ce", "ce_weight"), ("kd", "kd_weight"), ("feat", "feature_weight"))
                 if isinstance(run.get(field), (int, float)) and run[field] != 0]
        return " · ".join(parts) or "-"
    if key == "tags":
        return ", ".join(value or [])
    if key == "notes":
        return (value or "").replace("\n", " ")
    if key == "id":
        return str(value)
    return field_text(key, value)


def stat_text(key: str, mean: float | None, spread: float | None, count: int) -> str:
    """mean ± std of a group (values in table units: accuracies and kd_gain in percent)."""
    if mean is None:
        return "-"
    if is_percent(key):
        sign = "+" if key == "kd_gain" else ""
        text, more = f"{mean:{sign}.2f}" + ("" if key == "kd_gain" else "%"), "{:.2f}"
    elif key == "duration_s":
        text, more = duration_text(mean), None
    else:
        text, more = f"{mean:.4g}", "{:.2g}"
    if count > 1 and spread is not None and more:
        text += " ± " + more.format(spread)
    return text


def is_numeric_values(values: list[Any]) -> bool:
    present = [v for v in values if v is not MISSING and v is not None]
    return bool(present) and all(is_number(v) for v in present)
