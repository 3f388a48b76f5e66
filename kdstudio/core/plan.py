"""The run plan: which phases a config runs, and each phase's epochs and steps.

One derivation for the engine (which trains by it), the window (curves, progress and ETA
before the first event) and replay (a stored run's phases). A run trains its teacher (if
its method uses one), then the student alone as a baseline (if asked, beside a teacher),
then the student with the configured method.

This module imports no torch at module level: the window asks for phase names early.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

PHASES = ("teacher", "baseline", "student")


@dataclass(frozen=True, slots=True)
class PhasePlan:
    """One phase: its name, epochs and optimisation steps per epoch."""

    name: str
    epochs: int
    steps_per_epoch: int

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def row(self) -> dict[str, Any]:
        """The form stored in the run's `plan` column."""
        return {"name": self.name, "epochs": self.epochs, "steps": self.steps}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PhasePlan:
        epochs = int(row["epochs"])
        return cls(str(row["name"]), epochs, int(row["steps"]) // max(epochs, 1))


@dataclass(frozen=True, slots=True)
class RunPlan:
    """The phases of a run in the order they run."""

    phases: tuple[PhasePlan, ...]

    @property
    def run_steps(self) -> int:
        return sum(phase.steps for phase in self.phases)

    @property
    def names(self) -> list[str]:
        return [phase.name for phase in self.phases]

    def __contains__(self, name: object) -> bool:
        return any(phase.name == name for phase in self.phases)

    def __getitem__(self, name: str) -> PhasePlan:
        for phase in self.phases:
            if phase.name == name:
                return phase
        raise KeyError(name)

    def get(self, name: str) -> PhasePlan | None:
        return next((phase for phase in self.phases if phase.name == name), None)

    def steps_before(self, name: str) -> int:
        """Run steps of the phases before `name` (where its steps start in the run)."""
        before = 0
        for phase in self.phases:
            if phase.name == name:
                return before
            before += phase.steps
        raise KeyError(name)

    def rows(self) -> list[dict[str, Any]]:
        return [phase.row() for phase in self.phases]

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> RunPlan:
        return cls(tuple(PhasePlan.from_row(row) for row in rows))


def method_uses_teacher(method: str) -> bool:
    from kdstudio.core.distill.methods import METHODS

    return bool(METHODS.get(method).uses_teacher)


def phase_names(config: Any) -> list[str]:
    """The phases `config` (a RunConfig) runs, in order."""
    if not method_uses_teacher(config.distill.method):
        return ["student"]
    return ["teacher", "baseline", "student"] if config.distill.baseline else [
        "teacher", "student"]


def planned_epochs(config: Any, phase: str) -> int:
    """Epochs a phase trains for: a teacher loaded from a checkpoint trains none."""
    if phase == "teacher":
        return 0 if config.teacher.checkpoint else config.teacher.epochs
    return config.optim.epochs


def plan_run(config: Any, train_size: int, epoch_size: int,
             teacher_epochs: int | None = None) -> RunPlan:
    """The plan of `config` given its data: the teacher passes over all `train_size`
    training examples each epoch, baseline and student over `epoch_size` (the labelled
    subset, or the transfer set when the KD terms take their own batches). A phase of no
    epochs (a teacher loaded from a file) plans no steps per epoch, as its stored row says.
    `teacher_epochs`, when given, is what the built teacher trains (a checkpoint whose head
    was replaced is fine-tuned for teacher.epochs)."""
    batch = config.data.batch_size
    phases = []
    for name in phase_names(config):
        size = train_size if name == "teacher" else epoch_size
        epochs = planned_epochs(config, name)  # a phase that trains no epoch has no steps
        if name == "teacher" and teacher_epochs is not None:
            epochs = teacher_epochs
        phases.append(PhasePlan(name, epochs, math.ceil(size / batch) if epochs else 0))
    return RunPlan(tuple(phases))
