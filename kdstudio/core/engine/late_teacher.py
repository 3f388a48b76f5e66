"""A teacher checkpoint that another process is still writing (a sweep's shared teacher,
trained by another trial): the run trains its baseline first, waits for the file, loads
it, then adds the baseline's per-epoch agreement and KL with that teacher. The run records
what it would have recorded with the file there from the start: every phase seeds its own
random state, and the loaded teacher draws none."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import torch

from kdstudio.core.checkpoint import load_teacher_weights
from kdstudio.core.engine.context import RunContext, RunStopped
from kdstudio.core.engine.evaluation import validation_metrics

POLL_SECONDS = 0.1
KEPT_LOGITS_BYTES = 256 * 2**20  # the baseline's validation logits kept for the teacher
AGAINST_TEACHER = ("val/agreement", "val/kl")


class LateTeacher(Protocol):
    """Where the run's teacher checkpoint (`teacher.checkpoint`) will come from."""

    def describe(self) -> str:
        """What is awaited, for the run's log ("run 12's teacher")."""
        ...

    def ready(self) -> bool:
        """True once the checkpoint file is complete; raises TeacherUnavailable (saying
        why) when it never will be."""
        ...


class TeacherUnavailable(RuntimeError):
    """The awaited teacher will not come (the run that trains it failed)."""


@dataclass(frozen=True)
class KeptValidation:
    """One baseline epoch's validation logits, kept until the teacher is there."""

    epoch: int
    step: int
    logits: torch.Tensor
    wall_time: float


def trains_baseline_first(run: RunContext) -> bool:
    """Whether the run trains its baseline while its teacher is still on the way: it has
    a late teacher, a baseline, and that baseline's validation logits fit in
    KEPT_LOGITS_BYTES (otherwise it waits first and trains in the usual order)."""
    p = run.p
    if p.teacher_later is None or "baseline" not in run.plan:
        return False
    size = len(p.data.y_val) * p.data.num_classes * run.plan["baseline"].epochs * 4
    return size <= KEPT_LOGITS_BYTES


def wait_for_teacher(run: RunContext) -> None:
    """Block until the late teacher's file is complete (a stop request ends the wait),
    then load it into the run's teacher."""
    late, teacher = run.p.teacher_later, run.p.teacher
    assert late is not None and teacher is not None
    started = time.monotonic()
    if not late.ready():
        run.log(f"Waiting for {late.describe()}")
        while True:  # a stop request goes before whatever the teacher's run did
            if run.should_stop():
                raise RunStopped
            if late.ready():
                break
            time.sleep(POLL_SECONDS)
        what = late.describe()
        run.log(f"{what[:1].upper()}{what[1:]} came after {time.monotonic() - started:.1f} s")
    try:
        load_teacher_weights(teacher, run.config.teacher.checkpoint, fine_tune=False)
    except ValueError as error:
        raise TeacherUnavailable(f"teacher.checkpoint: {error}") from None
    run.teacher_pending = False


def keep_baseline_validation(run: RunContext, epoch: int, step: int,
                             logits: torch.Tensor) -> None:
    """Keep a baseline epoch's validation logits while there is no teacher to compare."""
    run.kept_validation.append(KeptValidation(epoch, step, logits, time.time()))


def record_kept_agreement(run: RunContext) -> None:
    """The baseline's agreement and KL with the teacher, for the epochs trained before it
    came, as rows at those epochs' steps and times."""
    reference, y_val = run.teacher_val, run.p.data.y_val
    assert reference is not None
    rows = []
    for kept in run.kept_validation:
        values = validation_metrics(kept.logits, y_val, reference)
        rows += [(run.run_id, "baseline", kept.step, kept.epoch, name, values[name],
                  kept.wall_time) for name in AGAINST_TEACHER]
    run.kept_validation.clear()
    run.recorder.metric_rows(rows)
