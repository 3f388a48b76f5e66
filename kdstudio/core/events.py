"""What a run tells its listeners, one class per kind of event.

The engine emits them (through its recorder), the window's worker forwards them, the CLI
prints them and `core.replay` rebuilds them from a stored run's rows: one schema for all.
Each class has a `kind` name ("step", "epoch", ...) for dispatch by name. Step events
come in order, one per optimisation step, in batches at most 0.1 s apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kdstudio.core.plan import RunPlan


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a resumed run went on: after `epoch` epochs of `phase`, at `run_step`."""

    phase: str
    epoch: int
    run_step: int


@dataclass(frozen=True, slots=True)
class RunStarted:
    """The run has its row in the history (`run_id`) and is about to train by `plan`.
    `sizes`, `data` and `class_names` are only known live; `replay` marks a rebuilt one."""

    kind: ClassVar[str] = "run_started"
    run_id: int
    name: str
    config: dict[str, Any]
    device: str
    plan: RunPlan
    sizes: dict[str, Any] = field(default_factory=dict)
    data: dict[str, int] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    resumed: ResumePoint | None = None
    replay: bool = False

    @property
    def run_steps(self) -> int:
        return self.plan.run_steps


@dataclass(frozen=True, slots=True)
class PhaseStarted:
    """A phase starts training (at `first_epoch` when a resumed run goes on in it)."""

    kind: ClassVar[str] = "phase_started"
    run_id: int
    phase: str
    epochs: int
    steps_per_epoch: int
    first_epoch: int = 0


@dataclass(frozen=True, slots=True)
class PhaseFinished:
    """A phase trained its last epoch."""

    kind: ClassVar[str] = "phase_finished"
    run_id: int
    phase: str


@dataclass(frozen=True, slots=True)
class Step:
    """One optimisation step: `values` holds its losses by part (`loss/...`), `lr`, the
    scheduled values (`sched/...`) and, for the last step of a batch, `samples_per_s`.
    `step` and `epoch` count from 1 within the phase, `run_step` within the run."""

    kind: ClassVar[str] = "step"
    run_id: int
    phase: str
    epoch: int
    epochs: int
    step: int
    steps: int
    run_step: int
    run_steps: int
    values: dict[str, float]


@dataclass(frozen=True, slots=True)
class Epoch:
    """An epoch's end: train and validation figures (`train/...`, `val/...`). A teacher
    loaded from a file gets one with epoch 0 (its validation figures)."""

    kind: ClassVar[str] = "epoch"
    run_id: int
    phase: str
    epoch: int
    epochs: int
    step: int
    values: dict[str, float]


@dataclass(frozen=True, slots=True)
class Log:
    """A line of the run's log; `level` is info, warning or error."""

    kind: ClassVar[str] = "log"
    run_id: int
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class PhaseTested:
    """A phase's model measured on the test split (the teacher's before any student
    trains); replay rebuilds it from the phase's `test/acc` row."""

    kind: ClassVar[str] = "tested"
    run_id: int
    phase: str
    accuracy: float


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The run's end: `status` completed, stopped or failed, and why it failed."""

    kind: ClassVar[str] = "run_finished"
    run_id: int
    status: str
    error: str | None
    summary: dict[str, Any]


Event = (RunStarted | PhaseStarted | PhaseFinished | Step | Epoch | Log | PhaseTested
         | RunFinished)
EventSink = Callable[[Event], None]
