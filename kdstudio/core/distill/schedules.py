"""Schedules for the temperature and the loss weights of the distillation phase.

In the config, `[distill.schedules]` maps a key to a table, e.g.

    [distill.schedules]
    kd_weight = { kind = "warmup", epochs = 5 }          # 0 -> kd_weight over 5 epochs
    temperature = { kind = "decay", end = 1.0 }          # temperature -> 1 over the phase

Kinds: `constant` (the configured value throughout), `warmup` (linear from `start`, default
0, up to the configured value over `epochs` epochs, then constant) and `decay` (linear from
the configured value down to `end`, default 0, over `epochs` epochs, 0 meaning the whole
phase, then constant). Values move every step: after `e` epochs of `n` steps each, progress
is `step / n` epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCHEDULE_KINDS = ("constant", "warmup", "decay")
SCHEDULED_KEYS = ("temperature", "ce_weight", "kd_weight", "feature_weight")
SCHEDULE_FIELDS = {"kind": str, "epochs": int, "start": float, "end": float}
FIELD_KIND = {"start": "warmup", "end": "decay"}  # which kind takes the field


@dataclass(frozen=True)
class Schedule:
    """How one value moves during a phase, relative to its configured (base) value."""

    kind: str = "constant"
    epochs: int = 0
    start: float = 0.0
    end: float = 0.0

    def value(self, base: float, progress: float, phase_epochs: int) -> float:
        """The value after `progress` epochs (fractional) of a phase of `phase_epochs`."""
        if self.kind == "warmup" and self.epochs > 0:
            fraction = min(progress / self.epochs, 1.0)
            return self.start + (base - self.start) * fraction
        if self.kind == "decay":
            span = self.epochs or phase_epochs
            fraction = min(progress / max(span, 1), 1.0)
            return base + (self.end - base) * fraction
        return base


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def schedule_problems(table: Any) -> list[str]:
    """Every problem of a `[distill.schedules]` table, one line each with its key path."""
    if not isinstance(table, dict):
        return [f"distill.schedules: must be a table (got {table!r})"]
    problems: list[str] = []
    for key, entry in table.items():
        where = f"distill.schedules.{key}"
        if key not in SCHEDULED_KEYS:
            problems.append(f"{where}: nothing to schedule by that name (choose from: "
                            f"{', '.join(SCHEDULED_KEYS)})")
            continue
        if not isinstance(entry, dict):
            problems.append(f'{where}: must be a table like {{kind = "warmup", epochs = 5}} '
                            f"(got {entry!r})")
            continue
        problems += _entry_problems(key, entry, where)
    return problems


def _entry_problems(key: str, entry: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    for name in entry:
        if name not in SCHEDULE_FIELDS:
            problems.append(f"{where}.{name}: unknown key (expected one of: "
                            f"{', '.join(SCHEDULE_FIELDS)})")
    kind = entry.get("kind", "constant")
    if kind not in SCHEDULE_KINDS:
        problems.append(f"{where}.kind: unknown schedule {kind!r} (choose from: "
                        f"{', '.join(SCHEDULE_KINDS)})")
        return problems
    epochs = entry.get("epochs", 0)
    if not isinstance(epochs, int) or isinstance(epochs, bool):
        problems.append(f"{where}.epochs: must be an integer (got {epochs!r})")
    elif kind == "warmup" and epochs < 1:
        problems.append(f"{where}.epochs: a warm-up needs epochs >= 1 (got {epochs})")
    elif epochs < 0:
        problems.append(f"{where}.epochs: must be >= 0, 0 meaning the whole phase (got {epochs})")
    for name, owner in FIELD_KIND.items():
        if name not in entry:
            continue
        value = entry[name]
        if kind != owner:
            problems.append(f"{where}.{name}: only a '{owner}' schedule takes '{name}' "
                            f"(this one is '{kind}')")
        elif not _is_number(value):
            problems.append(f"{where}.{name}: must be a number (got {value!r})")
        elif key == "temperature" and not value > 0:
            problems.append(f"{where}.{name}: the temperature must stay > 0 (got {value:g})")
        elif not value >= 0:
            problems.append(f"{where}.{name}: a weight must be >= 0 (got {value:g})")
    if key == "temperature" and kind in FIELD_KIND.values():
        field = "start" if kind == "warmup" else "end"
        if field not in entry:
            problems.append(f"{where}.{field}: a temperature {kind} needs '{field}' > 0 "
                            "(the default 0 is not a temperature)")
    return problems


def parse_schedules(table: dict[str, Any]) -> dict[str, Schedule]:
    """Schedules by key from a table that `schedule_problems` accepted."""
    return {key: Schedule(kind=entry.get("kind", "constant"), epochs=int(entry.get("epochs", 0)),
                          start=float(entry.get("start", 0.0)), end=float(entry.get("end", 0.0)))
            for key, entry in table.items()}


class PhaseSchedules:
    """The temperature and weights at each step of one phase.

    `values(step)` gives all of SCHEDULED_KEYS; `metrics(values)` the `sched/<key>` step
    metrics of the keys that actually move (non-constant schedules), for the charts.
    """

    def __init__(self, base: dict[str, float], table: dict[str, Any], steps_per_epoch: int,
                 epochs: int) -> None:
        self.base = dict(base)
        self.schedules = {k: s for k, s in parse_schedules(table).items() if s.kind != "constant"}
        self.steps_per_epoch = max(steps_per_epoch, 1)
        self.epochs = epochs

    @property
    def moving(self) -> list[str]:
        return list(self.schedules)

    def values(self, step: int) -> dict[str, float]:
        """Values for the step with 0-based index `step` in the phase."""
        progress = step / self.steps_per_epoch
        result = dict(self.base)
        for key, schedule in self.schedules.items():
            result[key] = schedule.value(self.base[key], progress, self.epochs)
        return result

    def metrics(self, values: dict[str, float]) -> dict[str, float]:
        return {f"sched/{key}": values[key] for key in self.schedules}
