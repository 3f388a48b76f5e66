"""Resumable checkpoints: the whole training state of a run at the end of an epoch.

One file per run, `<artifacts>/run-N/resume.safetensors`, replaced at epoch ends (at most
one a second, and at each phase's end; written under a temporary name, then renamed over the
old one, so a reader only ever sees a whole checkpoint). The training thread only copies the
state; a thread of the recorder's writes the file while the next epoch trains. Its tensors
are the model of the current phase, the trainable adapters, the optimiser state and the
random generators' states, packed into one flat tensor per dtype (safetensors spends about
0.1 ms of Python per tensor it writes, and a ResNet has a hundred); its metadata (JSON)
holds the index of the packed tensors, where the run is (phase, epochs done, steps done) and
what it has found so far (the run summary). Weights of finished phases are not repeated
here: they are the run's artifacts.

This module imports torch only inside the functions that read or write tensors, so the
window can ask whether a run is resumable before torch is loaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdstudio.core.config import ConfigError

if TYPE_CHECKING:
    import torch

CHECKPOINT_NAME = "resume.safetensors"
META_KEY = "kdstudio_resume"
FORMAT_VERSION = 1
RESUMABLE_STATUSES = ("stopped", "interrupted")


class ResumeRefused(ConfigError):
    """A run that cannot be resumed; `problems` holds the one line that says why."""

    def __init__(self, reason: str) -> None:
        super().__init__([reason])


def checkpoint_path(artifact_dir: Path) -> Path:
    """Where a run's checkpoint lives, given `Store.artifact_dir(run_id)`."""
    return artifact_dir / CHECKPOINT_NAME


def refusal(run: dict[str, Any] | None, artifact_dir: Path, key: str | int = "") -> str:
    """Why `run` (a history row) cannot be resumed, or "" when it can (as far as its status
    and files tell; the config is checked when it is prepared)."""
    if run is None:
        return f"no run '{key}' in the history"
    label = f"run {run['id']} ({run['name']})"
    if run["status"] not in RESUMABLE_STATUSES:
        why = {"completed": "it has finished", "failed": "it failed",
               "running": "it is still running"}.get(run["status"], "")
        return (f"{label} is {run['status']}: only a stopped or interrupted run can be "
                f"resumed" + (f" ({why})" if why else ""))
    if not checkpoint_path(artifact_dir).is_file():
        return f"{label} has no checkpoint (it ended before its first epoch finished)"
    env = run.get("env")
    world = env.get("world_size", 1) if isinstance(env, dict) else 1
    if world > 1:
        return (f"{label} was trained by {world} processes under torchrun: resuming a "
                "data-parallel run is not supported yet (start it again)")
    return ""


@dataclass
class TrainingState:
    """What a phase needs to go on exactly where it was, at the end of an epoch."""

    phase: str
    epochs_done: int
    phase_step: int  # optimisation steps of the phase done (epochs_done * steps per epoch)
    run_step: int
    elapsed_s: float  # training time of the run so far, in the sessions before this one
    summary: dict[str, Any]
    plan: list[dict[str, Any]]
    model: dict[str, torch.Tensor]
    adapters: dict[str, torch.Tensor] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)  # torch's "state" part
    rng: dict[str, torch.Tensor] = field(default_factory=dict)
    cycle_pending: list[torch.Tensor] = field(default_factory=list)
    scaler: dict[str, Any] = field(default_factory=dict)


@dataclass
class PackedState:
    """A checkpoint ready to write: its tensors copied out of the live training state
    (packing copies them), so training may go on while the file is written."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]


def pack_state(state: TrainingState) -> PackedState:
    """The checkpoint of `state` as packed tensors and metadata, detached from `state`."""
    import torch

    tensors: dict[str, torch.Tensor] = {}
    for prefix, group in (("model", state.model), ("adapters", state.adapters),
                          ("rng", state.rng)):
        for key, tensor in group.items():
            tensors[f"{prefix}.{key}"] = tensor.detach().cpu().contiguous()
    optimizer_values: dict[str, dict[str, Any]] = {}
    for index, values in state.optimizer.items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value.detach().cpu().contiguous()
            elif value is not None:
                optimizer_values.setdefault(str(index), {})[name] = value
    pending = [batch.cpu() for batch in state.cycle_pending]
    tensors["cycle.pending"] = (torch.cat(pending) if pending
                                else torch.empty(0, dtype=torch.int64))
    packed, index = _pack(tensors)  # torch.cat copies: nothing here aliases the model
    meta = {"version": FORMAT_VERSION, "index": index, "phase": state.phase,
            "epochs_done": state.epochs_done,
            "phase_step": state.phase_step, "run_step": state.run_step,
            "elapsed_s": state.elapsed_s, "summary": state.summary, "plan": state.plan,
            "optimizer_values": optimizer_values, "scaler": state.scaler,
            "cycle_lengths": [len(batch) for batch in pending]}
    return PackedState(packed, {META_KEY: json.dumps(meta)})


def write_packed(path: Path, packed: PackedState) -> int:
    """Write a packed checkpoint atomically (temporary name, then rename); returns its
    size. Raises OSError, and leaves the previous checkpoint as it was."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    try:
        save_file(packed.tensors, str(temporary), metadata=packed.metadata)
        os.replace(temporary, path)
    except Exception as error:  # safetensors' own error on a full disk is not an OSError
        with contextlib.suppress(OSError):  # the previous checkpoint stays as it was
            temporary.unlink()
        if isinstance(error, OSError):
            raise
        raise OSError(f"cannot write {temporary}: {error}") from None
    return path.stat().st_size


def write_state(path: Path, state: TrainingState) -> int:
    """Write the checkpoint of `state` now; returns its size. Raises OSError."""
    return write_packed(path, pack_state(state))


class CheckpointWriter:
    """Writes checkpoints on a thread of its own, so that an epoch's end costs the training
    thread only the copy: `submit` never waits. A checkpoint submitted while another is
    being written replaces any older one still waiting (only the newest is worth writing).
    A write's failure is raised (as OSError) by the next `submit` or `wait`; `wait`
    before the checkpoint is read or removed."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._waiting: tuple[Path, PackedState] | None = None
        self._busy = False  # a thread is writing or about to
        self._failure: OSError | None = None
        self.last_bytes = 0
        self.skipped = 0  # checkpoints replaced by a newer one before they were written

    def submit(self, path: Path, packed: PackedState) -> None:
        """Write `packed` to `path` after the write under way, if any."""
        with self._lock:
            self._raise_failure()
            if self._waiting is not None:
                self.skipped += 1
            self._waiting = (path, packed)
            if self._busy:
                return
            self._busy = True
        threading.Thread(target=self._write_all, name="kdstudio-checkpoint",
                         daemon=True).start()

    def wait(self) -> int:
        """Block until every submitted checkpoint is written; returns the last size."""
        with self._lock:
            self._lock.wait_for(lambda: not self._busy)
            self._raise_failure()
            return self.last_bytes

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _write_all(self) -> None:
        while True:
            with self._lock:
                if self._waiting is None:
                    self._busy = False
                    self._lock.notify_all()
                    return
                path, packed = self._waiting
                self._waiting = None
            try:
                size = write_packed(path, packed)
            except OSError as error:
                with self._lock:
                    self._failure = error
            else:
                with self._lock:
                    self.last_bytes = size


def read_state(path: Path) -> TrainingState:
    """The checkpoint at `path`; raises ResumeRefused when it is missing or unreadable."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})[META_KEY])
            packed = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except FileNotFoundError:
        raise ResumeRefused(f"{path}: no checkpoint") from None
    except (OSError, SafetensorError, KeyError, ValueError) as error:
        raise ResumeRefused(f"{path}: not a readable checkpoint ({error})") from None
    if not isinstance(meta, dict) or meta.get("version") != FORMAT_VERSION:
        raise ResumeRefused(f"{path}: a checkpoint of another format (version "
                            f"{meta.get('version') if isinstance(meta, dict) else '?'}, "
                            f"this version reads {FORMAT_VERSION})")
    try:
        return _state_from(meta, _unpack(packed, meta["index"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ResumeRefused(f"{path}: not a readable checkpoint ({error})") from None


def _pack(tensors: dict[str, torch.Tensor]
          ) -> tuple[dict[str, torch.Tensor], list[list[Any]]]:
    """One flat tensor per dtype, and the index [name, dtype, shape, offset] to unpack."""
    import torch

    groups: dict[str, list[torch.Tensor]] = {}
    index: list[list[Any]] = []
    sizes: dict[str, int] = {}
    for name, tensor in tensors.items():
        dtype = str(tensor.dtype).removeprefix("torch.")
        index.append([name, dtype, list(tensor.shape), sizes.get(dtype, 0)])
        sizes[dtype] = sizes.get(dtype, 0) + tensor.numel()
        groups.setdefault(dtype, []).append(tensor.reshape(-1))
    return {dtype: torch.cat(parts) for dtype, parts in groups.items()}, index


def _unpack(packed: dict[str, torch.Tensor], index: list[list[Any]]
            ) -> dict[str, torch.Tensor]:
    """The tensors `_pack` packed, each a tensor of its own."""
    import math

    out = {}
    for name, dtype, shape, offset in index:
        count = math.prod(shape)
        out[name] = packed[dtype][offset:offset + count].reshape(shape).clone()
    return out


def _state_from(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> TrainingState:
    groups: dict[str, dict[str, torch.Tensor]] = {"model": {}, "adapters": {}, "rng": {}}
    optimizer: dict[int, dict[str, Any]] = {
        int(index): dict(values) for index, values in meta["optimizer_values"].items()}
    for key, tensor in tensors.items():
        prefix, _, rest = key.partition(".")
        if prefix in groups:
            groups[prefix][rest] = tensor
        elif prefix == "optim":
            index, _, name = rest.partition(".")
            optimizer.setdefault(int(index), {})[name] = tensor
    pending = list(tensors["cycle.pending"].split(meta["cycle_lengths"])) \
        if meta["cycle_lengths"] else []
    return TrainingState(
        phase=meta["phase"], epochs_done=int(meta["epochs_done"]),
        phase_step=int(meta["phase_step"]), run_step=int(meta["run_step"]),
        elapsed_s=float(meta["elapsed_s"]), summary=dict(meta["summary"]),
        plan=list(meta["plan"]), model=groups["model"], adapters=groups["adapters"],
        optimizer=optimizer, rng=groups["rng"], cycle_pending=pending,
        scaler=dict(meta["scaler"]))


def remove_checkpoint(artifact_dir: Path) -> None:
    """Delete a run's checkpoint (and a temporary file left by a crash while writing); one
    that cannot be removed is left where it is (the run's end must not fail on it)."""
    path = checkpoint_path(artifact_dir)
    for file in (path, path.with_name(path.name + ".tmp")):
        with contextlib.suppress(OSError):
            file.unlink(missing_ok=True)
