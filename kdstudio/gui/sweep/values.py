"""What the Sweep dialog offers and reads, without Qt: the keys a sweep may vary (from the
form's field table) and the values typed for one key (a list, or a range low..high).

A number key takes comma-separated values or a range: for a grid the range becomes `count`
values, evenly spaced (or log-spaced); for random and optuna it is the range table
`{low, high, log}` the sweep file holds. A choice key takes the choices ticked; a bool key
takes true, false or both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kdstudio.core.config.fields import FIELDS, Field, param_fields
from kdstudio.core.config.rules import value_at
from kdstudio.core.text import short_number

AXIS_KINDS = ("int", "float", "choice", "model", "bool")
NOT_SWEPT = {"seed", "device", "name", "teacher.arch", "data.dataset", "data.transfer_dataset"}


@dataclass(frozen=True)
class AxisKey:
    """A key a sweep may vary: its field (label, kind, rule, choices)."""

    field: Field

    @property
    def key(self) -> str:
        return self.field.key

    @property
    def label(self) -> str:
        group = {"distill": "Distillation", "optim": "Optimiser", "data": "Data",
                 "teacher": "Teacher", "student": "Student"}.get(self.key.split(".")[0], "")
        label = self.field.label
        return f"{label} ({group})" if group and group != label else label

    @property
    def numeric(self) -> bool:
        return self.field.kind in ("int", "float")

    def choices(self) -> list[tuple[Any, str]]:
        """(value, label) pairs for a choice or bool key."""
        if self.field.kind == "bool":
            return [(True, "true"), (False, "false")]
        return [(value, label) for value, label, _tip in self.field.choices()]  # type: ignore[misc]


def axis_keys(config: dict[str, Any]) -> list[AxisKey]:
    """Every key of the form a sweep may vary for this config, in the form's order: numbers,
    choices and switches, plus the current method's parameters; enabled fields only."""
    keys = []
    for field in FIELDS:
        if field.kind not in AXIS_KINDS or field.key in NOT_SWEPT:
            continue
        if not field.is_shown(config) or not field.is_enabled(config):
            continue
        keys.append(AxisKey(field))
        if field.key == "distill.method":
            keys += [AxisKey(f) for f in param_fields("distill.params",
                                                      value_at(config, "distill.method"))]
    return keys


def plain(value: Any) -> str:
    """A number as typed in a list: `4.0` -> `4`, `1000` -> `1000` (no separators)."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _number(text: str, field: Field) -> int | float:
    text = text.strip()
    if not text:
        raise ValueError("an empty value")
    try:
        value: int | float = int(text) if field.kind == "int" else float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not {'a whole' if field.kind == 'int' else 'a'} "
                         "number") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    rule = field.rule
    if rule is not None and rule.text and not rule.accepts(value):
        raise ValueError(f"must be {rule.text} (got {short_number(value)})")
    return value


def parse_list(text: str, field: Field) -> list[int | float]:
    """Comma-separated numbers for `field`; ValueError naming the key and the bad value."""
    try:
        values = [_number(part, field) for part in text.split(",")]
    except ValueError as error:
        raise ValueError(f"{field.key}: {error}") from None
    if len(set(values)) != len(values):
        raise ValueError(f"{field.key}: a value is given twice")
    return values


def parse_range(low: str, high: str, field: Field) -> tuple[int | float, int | float]:
    """The bounds low < high of a range for `field`."""
    try:
        a, b = _number(low, field), _number(high, field)
    except ValueError as error:
        raise ValueError(f"{field.key}: {error}") from None
    if not a < b:
        raise ValueError(f"{field.key}: the range needs low < high (got {short_number(a)}.."
                         f"{short_number(b)})")
    return a, b


def range_values(low: float, high: float, count: int, log: bool, field: Field
                 ) -> list[int | float]:
    """`count` values from low to high, evenly or log-spaced (whole numbers for int keys)."""
    if count < 2:
        raise ValueError(f"{field.key}: a range needs a count of at least 2")
    if log and low <= 0:
        raise ValueError(f"{field.key}: a log range needs low > 0 (got {short_number(low)})")
    steps = [i / (count - 1) for i in range(count)]
    if log:
        values = [math.exp(math.log(low) + s * (math.log(high) - math.log(low))) for s in steps]
    else:
        values = [low + s * (high - low) for s in steps]
    if field.kind == "int":
        whole = list(dict.fromkeys(round(v) for v in values))
        if len(whole) < count:
            raise ValueError(f"{field.key}: only {len(whole)} whole numbers fit that range")
        return whole
    return [float(f"{v:.6g}") for v in values]


def parse_seeds(text: str, count_mode: bool, first: int) -> list[int]:
    """Seeds: a count N (seeds first .. first+N-1) or a comma-separated list."""
    if count_mode:
        try:
            count = int(text)
        except ValueError:
            raise ValueError(f"seed: {text!r} is not a whole number of seeds") from None
        if count < 1:
            raise ValueError("seed: at least one seed")
        return list(range(first, first + count))
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"seed: {text!r} is not a list of whole numbers") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError("seed: give one or more seeds >= 0")
    if len(set(seeds)) != len(seeds):
        raise ValueError("seed: a seed is given twice")
    return seeds


def plural(label: str, count: int) -> str:
    """`Temperature T (Distillation)`, 3 -> `3 temperatures`."""
    word = label.split(" (")[0]
    parts = word.split(" ")
    word = " ".join(parts[:-1]) if len(parts) > 1 and len(parts[-1]) == 1 else word
    word = word[:1].lower() + word[1:] if not word[1:2].isupper() else word
    return f"{count} {word}" + ("" if count == 1 or word.endswith("s") else "s")
