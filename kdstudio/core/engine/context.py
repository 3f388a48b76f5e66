"""The state of one run in progress, shared by its phases: what it has found so far, where
it is, where it records, and when to stop."""

from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kdstudio.core.distill.precision import resolve_precision
from kdstudio.core.engine.batches import BatchFactory
from kdstudio.core.engine.evaluation import TeacherReference
from kdstudio.core.engine.preparation import Prepared
from kdstudio.core.engine.recorder import Recorder
from kdstudio.core.engine.streaming import default_batches
from kdstudio.core.events import Epoch, ResumePoint
from kdstudio.core.resume import TrainingState
from kdstudio.core.store import HistoryError

if TYPE_CHECKING:
    from kdstudio.core.engine.late_teacher import KeptValidation


class RunStopped(Exception):
    """should_stop() said yes between two batches."""


class NonFiniteLoss(Exception):
    """A loss became NaN or infinite; the message names phase, epoch and step."""


def failure_reason(failure: BaseException) -> str:
    """One line saying why a run failed: the history's own message for a failed write,
    "disk full" and the OS message for a full disk, else the exception's type and
    message."""
    if isinstance(failure, HistoryError):
        return str(failure)
    text = str(failure)
    if (isinstance(failure, OSError) and failure.errno == errno.ENOSPC) \
            or "No space left on device" in text or "StorageFull" in text:
        where = getattr(failure, "filename", None)
        return "disk full: " + (f"cannot write {where}: No space left on device" if where
                                else text)
    if isinstance(failure, sqlite3.Error):
        return f"the history could not be written: {text}"
    return f"{type(failure).__name__}: {text}"


@dataclass
class CheckpointCosts:
    """How many checkpoints a run wrote, the time they cost the training thread (the copy;
    the file is written on a thread of its own) and the size of the last."""

    count: int = 0
    seconds: float = 0.0
    last_bytes: int = 0
    last_at: float = float("-inf")  # perf_counter() when the last one was submitted

    def describe(self) -> str:
        each = self.seconds / max(self.count, 1)
        return (f"Resumable checkpoints: {self.count} written, {each * 1000:.1f} ms each on the "
                f"training thread (written in the background), "
                f"{self.last_bytes / 1e6:.2f} MB")


class RunContext:
    """One run in progress: its prepared inputs, plan, recorder and running totals."""

    def __init__(self, prepared: Prepared, recorder: Recorder,
                 should_stop: Callable[[], bool], batches: BatchFactory | None = None) -> None:
        self.p = prepared
        self.batches: BatchFactory = batches or default_batches
        self.config = prepared.config
        self.recorder = recorder
        self.should_stop = should_stop
        self.plan = prepared.plan()
        self.run_steps = self.plan.run_steps
        self.summary: dict[str, Any] = {}
        self.run_step = 0
        self.teacher_val: TeacherReference | None = None  # the teacher on the val split
        self.started = time.monotonic()
        self.precision = resolve_precision(self.config.autocast, prepared.device)
        self.optimizer_logged = False
        self.resume_from: TrainingState | None = None  # where a resumed run goes on
        self.resumed_at: ResumePoint | None = None  # a resumed run: where it went on
        self.elapsed_before = 0.0  # a resumed run: training time of its earlier sessions
        self.checkpoints = CheckpointCosts()
        self.checkpoint_deferred_logged = False
        self.checkpoint_failed_logged = False
        # a late teacher (late_teacher.py): not loaded yet, and the baseline's validation
        # logits kept until it is
        self.teacher_pending = prepared.teacher_later is not None
        self.kept_validation: list[KeptValidation] = []

    @property
    def run_id(self) -> int:
        return self.recorder.run_id

    def log(self, message: str, level: str = "info") -> None:
        self.recorder.log(message, level)

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def done_before(self, phase: str) -> bool:
        """Whether a resumed run finished `phase` in an earlier session."""
        if self.resumed_at is None:
            return False
        names = self.plan.names
        return names.index(phase) < names.index(self.resumed_at.phase)

    def record_epoch(self, phase: str, epoch: int, epochs: int, step: int,
                     values: dict[str, float]) -> None:
        # buffered like the step rows: in the file at most FLUSH_SECONDS later, and at once
        # when the run ends (a commit per epoch costs short epochs about 1 %)
        self.recorder.metrics(phase, step, epoch, values)
        acc = values["val/acc"]
        best = max(self.summary.get(f"{phase}_best_val_acc", -1.0), acc)
        self.summary[f"{phase}_best_val_acc"] = best
        self.summary[f"{phase}_last_val_acc"] = acc
        self.recorder.emit(Epoch(self.run_id, phase, epoch, epochs, step, values))

    def describe_label_budget(self) -> None:
        """Say in the log which data each loss term sees and what an epoch means."""
        p, batch = self.p, self.config.data.batch_size
        n, n_labelled = len(p.data.y_train), len(p.labelled)
        if n_labelled < n:
            self.log(f"Labels: the student and the baseline use {n_labelled:,} of {n:,} "
                     f"labelled training examples (class-balanced, seed {self.config.seed}); "
                     "the teacher trains on all of them")
        if p.transfer_inputs is None:
            return
        source = ("all training inputs" if self.config.data.transfer == "all"
                  else f"dataset {self.config.data.transfer_dataset}")
        steps = self.plan["student"].steps_per_epoch
        self.log(f"Transfer set: {len(p.transfer_inputs):,} inputs ({source}), labels "
                 f"ignored. One epoch = one pass over the transfer set = {steps} steps; each "
                 f"step: CE on a labelled batch of {batch} (the {n_labelled:,} labelled "
                 f"examples cycle), KD terms on a transfer batch of {batch}. The baseline "
                 "takes the same labelled batches, step for step")
