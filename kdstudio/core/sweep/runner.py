"""`run_sweep`: the sweep's trials on a backend, every one a run row of the sweep's group;
completed trials of an earlier attempt skipped, one teacher trained per teacher config.

While a teacher is being trained, a free worker of the local backend whose process is
already there starts a trial that needs it anyway: the trial trains its baseline, then
waits for the file (parked: it holds no worker, but its process is not replaced: a new one
costs seconds of imports) and goes on from there, recording what it would have recorded had
it started after the teacher (see `engine.late_teacher`)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdstudio.core.store import Store
from kdstudio.core.sweep.events import (
    SweepEvent,
    SweepFinished,
    SweepStarted,
    TrialFinished,
    TrialStarted,
)
from kdstudio.core.sweep.search import Search, make_search
from kdstudio.core.sweep.spec import SweepSpec, Trial, group_id, sweep_name
from kdstudio.core.sweep.trials import (
    TrialFacts,
    base_config,
    labelled_trials,
    same_trial,
    teacher_key,
    trial_config,
    trial_facts,
    use_teacher,
)

BACKENDS = ("local", "ray")


@dataclass
class SweepResult:
    group_id: str
    run_ids: list[int]
    completed: int
    failed: int
    stopped: int
    best_run_id: int | None


@dataclass
class _Teacher:
    path: str | None = None
    run_id: int | None = None
    owner: int | None = None  # the running trial that trains it


@dataclass
class _Running:
    trial: Trial
    config: dict[str, Any]
    key: str | None
    run_id: int | None = None
    pid: int | None = None
    teacher_from: int | None = None  # started before its teacher: the run training it
    parked: bool = False  # waiting for that teacher (holds no worker)


@dataclass
class _Tally:
    statuses: dict[int, str] = field(default_factory=dict)  # trial index -> status
    values: dict[int, float] = field(default_factory=dict)  # run id -> metric
    run_ids: list[int] = field(default_factory=list)


def trial_threads(base: dict[str, Any]) -> int:
    """Threads one trial uses: `threads`, else 1 (automatic: 1 for small models)."""
    threads = base.get("threads", 0)
    return threads if isinstance(threads, int) and threads > 0 else 1


def auto_workers(threads: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // threads)


def run_sweep(spec: SweepSpec, db_path: str | Path, workers: int = 0, backend: str = "local",
              address: str | None = None,
              on_event: Callable[[SweepEvent], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> SweepResult:
    """Run the sweep's trials, at most `workers` at a time (0: cores / threads per trial).

    Raises ValueError or ConfigError (a bad base or trial config) before any trial runs.
    A trial that fails or whose process dies is recorded `failed` and the sweep goes on;
    when `should_stop` says yes, no trial starts and the running ones end `stopped`."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: must be one of {', '.join(BACKENDS)} (got {backend!r})")
    emit = on_event or (lambda _event: None)
    stop = should_stop or (lambda: False)
    base = base_config(spec)
    threads = trial_threads(base | {k: v for k, v in spec.fixed.items() if k == "threads"})
    workers = workers or auto_workers(threads)
    gid = group_id(spec)
    with Store(db_path) as store:
        runner: Any = None
        if backend == "local":
            from kdstudio.core.sweep.local import LocalBackend

            runner = LocalBackend(threads)
            runner.warm(workers)  # they import torch while this process plans the trials
        try:
            earlier = [run for run in store.runs_in_group(gid) if run["status"] == "completed"]
            search = make_search(spec, base, earlier)
            labelled = labelled_trials(spec, base, search.planned())
            # a trial process checks them unless torch is here already (importing it here
            # would take seconds of CPU from the trial processes importing it too)
            facts = runner.check(labelled) if runner and "torch" not in sys.modules else None
            facts = facts or trial_facts(labelled)
            facts.raise_problems()
            if runner is None:
                from kdstudio.core.sweep.ray_backend import RayBackend

                runner = RayBackend(threads, address, workers,
                                    lambda: _running_pids(store, gid))
            return _Sweep(spec, gid, store, search, runner, workers, emit, stop, base,
                          earlier, facts).run()
        finally:
            if runner is not None:
                runner.close()


def _on_cpu(config: dict[str, Any], auto_device: str) -> bool:
    """Whether a trial config runs on the CPU here (a trial waiting on a GPU would hold
    its memory); `auto_device`: the device type `auto` is here."""
    name = str(config.get("device", "auto")).strip().lower()
    return name == "cpu" or (name == "auto" and auto_device == "cpu")


def _running_pids(store: Store, gid: str) -> list[int]:
    """The processes of this machine running a trial of the sweep (from the runs table)."""
    host = socket.gethostname()
    return [run["pid"] for run in store.runs_in_group(gid)
            if run["status"] == "running" and run["host"] == host and run["pid"]]


class _Sweep:
    """One attempt at a sweep: its queue, its running trials, its teachers."""

    def __init__(self, spec: SweepSpec, gid: str, store: Store, search: Search, backend: Any,
                 workers: int, emit: Callable[[SweepEvent], None], stop: Callable[[], bool],
                 base: dict[str, Any], earlier: list[dict[str, Any]],
                 facts: TrialFacts) -> None:
        self.spec, self.gid, self.store, self.search = spec, gid, store, search
        self.facts = facts
        self.backend, self.workers, self.emit, self.stop = backend, workers, emit, stop
        self.base = base
        self.earlier = list(earlier)
        self.teachers: dict[str, _Teacher] = {}
        self.running: dict[int, _Running] = {}
        self.waiting: list[tuple[Trial, dict[str, Any]]] = []
        self.tally = _Tally()
        self.stopping = False

    def run(self) -> SweepResult:
        planned = self.search.planned()
        skipped = self._skip_completed(planned)
        self.emit(SweepStarted(self.gid, self.search.total(), skipped))
        while True:
            if not self.stopping and self.stop():
                self.stopping = True
                self.waiting.clear()
                self.backend.stop_all()
            if not self.stopping:
                self._fill()
            if not self.running and (self.stopping or (not self.waiting
                                                       and self.search.exhausted())):
                break
            for index, message in self.backend.poll(0.1):
                self._handle(index, message)
        return self._result()

    # ------------------------------------------------------------ queue

    def _skip_completed(self, planned: list[Trial]) -> int:
        """Mark the planned trials a completed run of this group already is; learn the
        teachers those runs trained."""
        axes = list(self.spec.axes)
        unused = list(self.earlier)
        for run in self.earlier:
            key = self._key(run["config"])
            if key and key not in self.teachers:
                self._learn_teacher(key, run["id"])
        skipped = 0
        for trial in planned:
            config = trial_config(self.spec, self.base, trial)
            match = next((run for run in unused if same_trial(run, config, axes)), None)
            if match is None:
                continue
            unused.remove(match)
            self.search.skip(trial)
            self._count(trial.index, "completed", match["id"], match["summary"])
            skipped += 1
        return skipped

    def _key(self, config: dict[str, Any]) -> str | None:
        return teacher_key(config, self.facts.teacher_methods)

    def _busy(self) -> int:
        return sum(not state.parked for state in self.running.values())

    def _fill(self) -> None:
        while self._busy() < self.workers:
            picked = self._ready_waiting()
            if picked is None:
                trial = self.search.next() if not self.waiting or self.search.lookahead \
                    else None
                if trial is None:
                    early = self._startable_early()
                    if early is not None:
                        self._start(*early)
                        continue
                    if self.waiting:  # a free worker waits for a teacher: prepare a process
                        self.backend.warm(self.workers - len(self.running))
                    return
                self.waiting.append((trial, trial_config(self.spec, self.base, trial)))
                continue
            self._start(*picked)

    def _ready_waiting(self) -> tuple[Trial, dict[str, Any]] | None:
        for position, (trial, config) in enumerate(self.waiting):
            key = self._key(config)
            teacher = self.teachers.get(key) if key else None
            if key is None or teacher is None or teacher.path or teacher.owner is None:
                del self.waiting[position]
                return trial, config
        return None

    def _startable_early(self) -> tuple[Trial, dict[str, Any], int] | None:
        """A waiting trial whose teacher a running trial (with its run row) is training,
        to start now; None unless the backend can keep a waiting trial in its process and
        has an idle process for it."""
        if not getattr(self.backend, "defers", False) or not self.backend.has_idle():
            return None
        for position, (trial, config) in enumerate(self.waiting):
            key = self._key(config)
            teacher = self.teachers.get(key) if key else None
            owner = self.running.get(teacher.owner) if teacher and teacher.owner is not None \
                else None
            if owner is not None and owner.run_id is not None \
                    and _on_cpu(config, self.facts.auto_device):
                del self.waiting[position]
                return trial, config, owner.run_id
        return None

    def _start(self, trial: Trial, config: dict[str, Any],
               teacher_from: int | None = None) -> None:
        key = self._key(config)
        notes = f"sweep {sweep_name(self.spec)}, trial {trial.index}"
        payload: dict[str, Any] = {}
        if teacher_from is not None:
            config = use_teacher(config, str(self.store.artifact_dir(teacher_from)
                                             / "teacher.safetensors"))
            notes += f"; teacher from run {teacher_from}"
            payload["teacher_from"] = teacher_from
        elif key is not None:
            teacher = self.teachers.setdefault(key, _Teacher())
            if teacher.path:
                config = use_teacher(config, teacher.path)
                notes += f"; teacher from run {teacher.run_id}"
            else:
                teacher.owner = trial.index
                notes += "; trains the sweep's teacher"
        payload |= {"config": config, "db": str(self.store.path), "group_id": self.gid,
                    "notes": notes}
        pid = self.backend.start(trial.index, payload)
        self.running[trial.index] = _Running(trial, config, key, pid=pid,
                                             teacher_from=teacher_from)
        if getattr(self.backend, "streams", True) is False:
            self.emit(TrialStarted(trial.index, dict(trial.overrides), None, None))

    # ------------------------------------------------------------ messages

    def _handle(self, index: int, message: dict[str, Any]) -> None:
        state = self.running.get(index)
        if state is None:
            return
        kind = message["type"]
        if kind == "started":
            state.run_id, state.pid = message["run_id"], message.get("pid")
            if getattr(self.backend, "streams", True):
                self.emit(TrialStarted(index, dict(state.trial.overrides), state.run_id,
                                       state.pid))
        elif kind in ("waiting", "resumed"):
            state.parked = kind == "waiting"
        elif kind == "teacher" and state.key is not None:
            teacher = self.teachers[state.key]
            if teacher.owner == index and not teacher.path:
                teacher.path, teacher.run_id = message["path"], message["run_id"]
                for other in self.running.values():  # they resume now: not a free worker
                    if other.teacher_from == teacher.run_id:
                        other.parked = False
        elif kind in ("finished", "died"):
            del self.running[index]
            if kind == "died":
                run_id, status, error, summary = self._record_death(state, message["error"])
            else:
                run_id, status = message["run_id"], message["status"]
                error, summary = message.get("error"), message.get("summary") or {}
                if run_id is None and status == "failed":
                    run_id = self._failed_row(state, error or "the trial failed")
                if self._teacher_never_came(state, status, error):
                    return
            teacher = self.teachers.get(state.key) if state.key else None
            if teacher is not None and teacher.owner == index:
                teacher.owner = None
                if status == "completed" and run_id is not None and not teacher.path:
                    self._learn_teacher(state.key, run_id)
            value = self._count(index, status, run_id, summary)
            self.search.tell(state.trial, value if status == "completed" else None)
            self.emit(TrialFinished(index, run_id, status, value, error,
                                    dict(state.trial.overrides)))

    def _teacher_never_came(self, state: _Running, status: str, error: str | None) -> bool:
        """A trial started early whose teacher's run ended without the teacher: its row
        stays `failed` with why, and the trial goes back to the queue (to load the teacher
        another trial trains)."""
        if state.teacher_from is None or status != "failed" or self.stopping \
                or not (error or "").startswith("TeacherUnavailable"):
            return False
        self.waiting.insert(0, (state.trial, trial_config(self.spec, self.base, state.trial)))
        return True

    def _learn_teacher(self, key: str, run_id: int) -> None:
        """The teacher a finished trial trained, from its artifacts."""
        files = self.store.artifacts(run_id, "teacher")
        if files:
            self.teachers[key] = _Teacher(str(self.store.artifact_file(files[-1]["path"])),
                                          run_id)

    def _record_death(self, state: _Running, error: str) -> tuple[int | None, str, str,
                                                                  dict[str, Any]]:
        """The trial's process died: its row (if it made one) ends `failed` with why."""
        run_id = state.run_id
        if run_id is None:  # it may have made its row without saying so yet
            mine = [run for run in self.store.runs_in_group(self.gid)
                    if run["pid"] == state.pid and run["status"] == "running"]
            run_id = mine[-1]["id"] if mine else None
        if run_id is None:
            return self._failed_row(state, error), "failed", error, {}
        row = self.store.get_run(run_id)
        if row is not None and row["status"] != "running":  # it ended before it died
            return run_id, row["status"], row["error"], row["summary"] or {}
        self.store.finish_run(run_id, "failed", error)
        return run_id, "failed", error, {}

    def _failed_row(self, state: _Running, error: str) -> int:
        """A `failed` row for a trial that failed before its run had one."""
        run_id = self.store.create_run(state.config, group_id=self.gid,
                                       notes=f"sweep {sweep_name(self.spec)}, trial "
                                             f"{state.trial.index}")
        self.store.finish_run(run_id, "failed", error)
        return run_id

    def _count(self, index: int, status: str, run_id: int | None,
               summary: dict[str, Any]) -> float | None:
        self.tally.statuses[index] = status
        if run_id is not None:
            self.tally.run_ids.append(run_id)
        value = summary.get(self.spec.metric) if status == "completed" else None
        if run_id is not None and isinstance(value, (int, float)):
            self.tally.values[run_id] = float(value)
        return float(value) if isinstance(value, (int, float)) else None

    def _result(self) -> SweepResult:
        statuses = list(self.tally.statuses.values())
        counts = {s: statuses.count(s) for s in ("completed", "failed", "stopped")}
        counts["failed"] += statuses.count("interrupted")
        values = self.tally.values
        best = max(values, key=lambda run_id: values[run_id]) if values else None
        self.emit(SweepFinished(self.gid, counts["completed"], counts["failed"],
                                counts["stopped"], best))
        return SweepResult(self.gid, sorted(self.tally.run_ids), counts["completed"],
                           counts["failed"], counts["stopped"], best)
