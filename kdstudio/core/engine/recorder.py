"""The recorder: the only part of the engine that writes a run's history (its row, metric
rows, log lines, artifacts and checkpoint) or emits its events.

Everything else in the engine calls it, so that a process which must not record (a rank
other than 0 under DDP) runs the same code with a `SilentRecorder`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from torch import nn

from kdstudio.core.checkpoint import save_model
from kdstudio.core.events import Event, EventSink, Log, PhaseStarted
from kdstudio.core.models.custom import copy_name
from kdstudio.core.plan import RunPlan
from kdstudio.core.resume import (
    CheckpointWriter,
    TrainingState,
    checkpoint_path,
    pack_state,
    remove_checkpoint,
)
from kdstudio.core.store import Store

MetricRow = tuple[int, str, int, int, str, float, float]  # run, phase, step, epoch, name, ...


def _ignore(_event: Event) -> None:
    return None


class Recorder:
    """Writes one run to `store` and hands its events to `on_event`.

    `emit` is the listener itself (no wrapper: steps are emitted one by one)."""

    def __init__(self, store: Store, on_event: EventSink | None = None) -> None:
        self.store = store
        self.emit: EventSink = on_event or _ignore
        self.run_id = -1
        self.checkpoints = CheckpointWriter()

    # ------------------------------------------------------------ the run's row

    def create_run(self, config: dict[str, Any], plan: RunPlan, env: dict[str, Any],
                   **columns: Any) -> int:
        self.run_id = self.store.create_run(config, env=json.dumps(env),
                                            plan=json.dumps(plan.rows()), **columns)
        return self.run_id

    def reopen(self, run_id: int, phases: list[str], phase_step: int) -> bool:
        """Take a stopped or interrupted run back (see `Store.reopen_run`)."""
        if not self.store.reopen_run(run_id, phases, phase_step):
            return False
        self.run_id = run_id
        return True

    def phase_started(self, event: PhaseStarted) -> None:
        self.store.update_run(self.run_id, current_phase=event.phase)
        self.emit(event)

    def finish(self, status: str, error: str | None, summary: dict[str, Any],
               **columns: Any) -> tuple[str, str | None]:
        """Write the run's end; returns the (status, error) written. Raises when the end
        cannot be recorded."""
        return self.store.finish_run(self.run_id, status, error,
                                     summary=json.dumps(summary), **columns)

    # ------------------------------------------------------------ rows

    def log(self, message: str, level: str = "info") -> None:
        """Keep a log line with the run's rows (once it has a row) and emit it."""
        if self.run_id >= 0:
            self.store.add_log(self.run_id, level, message)
        self.emit(Log(self.run_id, level, message))

    def metrics(self, phase: str, step: int, epoch: int, values: dict[str, float]) -> None:
        """Buffer metric values; they reach the file at most FLUSH_SECONDS later."""
        self.store.add_metrics(self.run_id, phase, step, epoch, values)

    def metric_rows(self, rows: list[MetricRow]) -> None:
        self.store.add_metric_rows(rows)

    def try_flush(self) -> bool:
        """Write the buffered rows unless another process holds the lock (then False)."""
        return self.store.try_flush()

    # ------------------------------------------------------------ files

    @property
    def artifact_dir(self) -> Path:
        return self.store.artifact_dir(self.run_id)

    def save_model(self, kind: str, model: nn.Module, extra: dict[str, Any]) -> None:
        weights, sidecar = save_model(model, self.artifact_dir, kind, extra)
        self.store.add_artifact(self.run_id, kind, weights, "safetensors",
                                {"spec": str(sidecar.name)})

    def save_code(self, role: str, file: str, source: bytes, digest: str) -> Path:
        """Keep a copy of a custom model's code (the bytes imported) with the run: an
        artifact of kind 'code', its sha256 in the artifacts table."""
        folder = self.artifact_dir / "code"
        folder.mkdir(parents=True, exist_ok=True)
        copy = folder / copy_name(file, digest)
        copy.write_bytes(source)
        self.store.add_artifact(self.run_id, "code", copy, "python",
                                {"role": role, "file": file, "sha256": digest})
        return copy

    def save_file(self, kind: str, source: Path, name: str, fmt: str) -> None:
        """Keep a copy of a model file as it is (an opaque teacher) with the run."""
        folder = self.artifact_dir
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / name)
        self.store.add_artifact(self.run_id, kind, folder / name, fmt, {"file": str(source)})

    def write_checkpoint(self, state: TrainingState) -> None:
        """Replace the run's resumable checkpoint: copied now, written on the writer's
        thread. Raises OSError when the previous write failed."""
        self.checkpoints.submit(checkpoint_path(self.artifact_dir), pack_state(state))

    def wait_checkpoint(self) -> int:
        """Wait for the checkpoint being written; returns its size. Raises OSError."""
        return self.checkpoints.wait()

    def remove_checkpoint(self) -> None:
        with contextlib.suppress(OSError):  # a failed last write leaves nothing to keep
            self.checkpoints.wait()
        remove_checkpoint(self.artifact_dir)


class SilentRecorder(Recorder):
    """A recorder that records nothing and emits nothing: for a process whose run another
    process records (a DDP rank other than 0). `run_id` is the recording process's."""

    def __init__(self, store: Store | None, run_id: int) -> None:
        super().__init__(store)  # type: ignore[arg-type]  # never used
        self.run_id = run_id

    def create_run(self, config: dict[str, Any], plan: RunPlan, env: dict[str, Any],
                   **columns: Any) -> int:
        return self.run_id

    def reopen(self, run_id: int, phases: list[str], phase_step: int) -> bool:
        return run_id == self.run_id

    def phase_started(self, event: PhaseStarted) -> None:
        return None

    def finish(self, status: str, error: str | None, summary: dict[str, Any],
               **columns: Any) -> tuple[str, str | None]:
        return status, error

    def log(self, message: str, level: str = "info") -> None:
        return None

    def metrics(self, phase: str, step: int, epoch: int, values: dict[str, float]) -> None:
        return None

    def metric_rows(self, rows: list[MetricRow]) -> None:
        return None

    def try_flush(self) -> bool:
        return True

    def save_model(self, kind: str, model: nn.Module, extra: dict[str, Any]) -> None:
        return None

    def save_code(self, role: str, file: str, source: bytes, digest: str) -> Path:
        return Path(file)

    def save_file(self, kind: str, source: Path, name: str, fmt: str) -> None:
        return None

    def write_checkpoint(self, state: TrainingState) -> None:
        return None

    def wait_checkpoint(self) -> int:
        return 0

    def remove_checkpoint(self) -> None:
        return None
