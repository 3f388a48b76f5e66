"""What the parallel-coordinates chart draws, without Qt: one axis per config key that
varies among the lines plus the metric axis last, each line's position on every axis
(0..1), tick labels, and which lines a set of brushed ranges keeps."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kdstudio.core.run_query import MISSING
from kdstudio.core.run_table import flatten, is_number, is_percent
from kdstudio.gui.compare.data import format_value

IGNORED_KEYS = ("name",)  # always differs, says nothing
FEW_VALUES = 6  # a numeric axis with this many distinct values or fewer ticks each one
METRICS = ("student_test_acc", "kd_gain", "student_best_val_acc", "student_last_val_acc",
           "baseline_test_acc", "teacher_test_acc", "compression", "duration_s")


@dataclass
class Line:
    """One polyline: a run, or a seed group drawn at its mean metric."""

    run_ids: list[int]
    label: str
    values: dict[str, Any]  # axis key -> value (MISSING when the run has none)
    spread: float | None = None  # std of the metric over the group's seeds


@dataclass
class Axis:
    key: str
    categorical: bool
    positions: list[float]  # per line, in 0..1; NaN: the line has no value here
    ticks: list[tuple[float, str]] = field(default_factory=list)
    low: float = 0.0
    high: float = 1.0

    def to_value(self, position: float) -> float:
        """A numeric axis's value at a position."""
        return self.low + position * (self.high - self.low)

    def to_position(self, value: float) -> float:
        return (value - self.low) / (self.high - self.low) if self.high > self.low else 0.5


def varying_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Flattened config keys whose values differ among the configs (in first-seen order)."""
    flat = [flatten(c) for c in configs]
    keys: list[str] = []
    for item in flat:
        keys += [k for k in item if k not in keys]
    return [k for k in keys if k not in IGNORED_KEYS
            and len({format_value(item.get(k)) for item in flat}) > 1]


def metric_value(run: Mapping[str, Any], metric: str) -> Any:
    value = run.get(metric)
    if not is_number(value):
        return MISSING
    return value * 100 if is_percent(metric) else value


def nice_ticks(low: float, high: float) -> list[float]:
    """Four to eight round tick values within [low, high] (steps of 1, 2 or 5 times a power
    of ten)."""
    span = high - low
    if span <= 0:
        return [low]
    power = 10 ** math.floor(math.log10(span))
    for step in (power * 5, power * 2, power, power / 2, power / 5, power / 10):
        first = math.ceil(low / step - 1e-9)
        ticks = [round(k * step, 12) for k in range(first, math.floor(high / step + 1e-9) + 1)]
        if len(ticks) >= 4:
            return ticks
    return [low, high]


def tick_text(value: float) -> str:
    return f"{value:.4g}"


def build_axis(key: str, values: Sequence[Any]) -> Axis:
    """Numbers on a linear scale (padded 5 %), anything else as evenly spaced labels."""
    present = [v for v in values if v is not MISSING and v is not None]
    if present and all(is_number(v) for v in present):
        low, high = float(min(present)), float(max(present))
        if high == low:
            low, high = low - 1, high + 1
        pad = (high - low) * 0.05
        axis = Axis(key, False, [], low=low - pad, high=high + pad)
        axis.positions = [axis.to_position(float(v)) if is_number(v) else math.nan
                          for v in values]
        distinct = sorted({float(v) for v in present})
        ticks = distinct if len(distinct) <= FEW_VALUES else nice_ticks(low, high)
        axis.ticks = [(axis.to_position(t), tick_text(t)) for t in ticks]
        return axis
    texts = [format_value(v) for v in present]
    numeric = all(_is_number_text(t) for t in texts)
    categories = sorted(set(texts), key=lambda t: (float(t), t) if numeric else (0.0, t))
    count = len(categories)
    spot = {text: (i / (count - 1) if count > 1 else 0.5) for i, text in enumerate(categories)}
    positions = [math.nan if v is MISSING or v is None else spot[format_value(v)]
                 for v in values]
    return Axis(key, True, positions, ticks=[(spot[c], c) for c in categories])


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def build_axes(lines: Sequence[Line], keys: Sequence[str], metric: str) -> list[Axis]:
    """One axis per key, then the metric's (its values are `values[metric]`)."""
    return [build_axis(key, [line.values.get(key, MISSING) for line in lines])
            for key in [*keys, metric]]


def brushed(axes: Sequence[Axis], brushes: Mapping[int, tuple[float, float]],
            count: int) -> list[int]:
    """Indices of the lines inside every brushed range (axis index -> (low, high) as
    positions); all lines when nothing is brushed."""
    keep = []
    for line in range(count):
        ok = True
        for index, (low, high) in brushes.items():
            position = axes[index].positions[line]
            if math.isnan(position) or not low <= position <= high:
                ok = False
                break
        if ok:
            keep.append(line)
    return keep
