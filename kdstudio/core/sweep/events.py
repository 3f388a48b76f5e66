"""What a sweep reports while it runs (frozen dataclasses, given to `on_event` from the
thread that called `run_sweep`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SweepStarted:
    group_id: str
    total: int
    skipped: int  # completed earlier (a re-run of the same sweep)


@dataclass(frozen=True)
class TrialStarted:
    index: int
    overrides: dict[str, Any]
    run_id: int | None
    pid: int | None


@dataclass(frozen=True)
class TrialFinished:
    index: int
    run_id: int | None
    status: str
    value: float | None
    error: str | None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepFinished:
    group_id: str
    completed: int
    failed: int
    stopped: int
    best_run_id: int | None


SweepEvent = SweepStarted | TrialStarted | TrialFinished | SweepFinished
