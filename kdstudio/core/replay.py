"""A saved run's engine events, rebuilt from its rows in the history.

A view fed by live events (the GUI's live view) can show a finished, stopped or failed run
the way it looked when the run ended: the same curves, phase bars and summary. Each event
comes with the wall-clock time (seconds since the epoch) at which the engine wrote it, so
durations and phase times read as they did live. The run's log lines come back from the
`logs` table, in their order and at their times, after a note that this is a replay.
The events are the engine's own classes (`core.events`); what only a live run knows (model
sizes, data sizes, class names) is left empty.
"""

from __future__ import annotations

import heapq
import math
from itertools import groupby
from types import SimpleNamespace
from typing import Any

from kdstudio.core.events import (
    Epoch,
    Event,
    Log,
    PhaseFinished,
    PhaseStarted,
    PhaseTested,
    RunFinished,
    RunStarted,
    Step,
)
from kdstudio.core.plan import PHASES, PhasePlan, RunPlan, planned_epochs
from kdstudio.core.store import Store, iso_seconds

STEP_PREFIXES = ("loss/", "sched/")
STEP_NAMES = ("lr", "samples_per_s")

Row = dict[str, Any]


def is_step_metric(name: str) -> bool:
    """Metric names the engine writes once per optimisation step (the rest are per epoch
    or per test)."""
    return name in STEP_NAMES or name.startswith(STEP_PREFIXES)


def _config_epochs(config: dict[str, Any], phase: str) -> int:
    """A stored config's planned epochs for `phase` (0 where the config does not say)."""
    teacher, optim = config.get("teacher", {}), config.get("optim", {})
    view = SimpleNamespace(teacher=SimpleNamespace(checkpoint=teacher.get("checkpoint", ""),
                                                   epochs=teacher.get("epochs", 0)),
                           optim=SimpleNamespace(epochs=optim.get("epochs", 0)))
    epochs = planned_epochs(view, phase)
    return int(epochs) if isinstance(epochs, (int, float)) else 0


def run_plan(run: Row, by_phase: dict[str, list[Row]]) -> RunPlan:
    """The run's plan as the engine stored it, those phases that never started included.
    Runs written before the plan was stored: the phases with rows, worked out from the
    config and the rows."""
    rows = [p for p in run.get("plan") or [] if isinstance(p, dict)]
    if rows:
        return RunPlan.from_rows(rows)
    phases = []
    for phase in PHASES:
        if not by_phase[phase]:
            continue
        step_rows = [row for row in by_phase[phase] if is_step_metric(row["name"])]
        per_epoch = len({row["step"] for row in step_rows if row["epoch"] == 1})
        epochs = max(_config_epochs(run["config"], phase),
                     max(row["epoch"] for row in by_phase[phase]))
        done = max((row["step"] for row in step_rows), default=0)
        phases.append(PhasePlan(phase, epochs, max(per_epoch, math.ceil(done / max(epochs, 1)))))
    return RunPlan(tuple(phases))


def _phase_events(run_id: int, plan: PhasePlan, rows: list[Row], offset: int,
                  run_steps: int, ran_to_end: bool) -> list[tuple[float, Event]]:
    """One phase's start, steps, epochs and (if it got there) end. Rows are taken in step
    order, a step's own rows before its epoch's: a baseline trained before its late teacher
    came has that teacher's figures written afterwards, at the epochs' steps."""
    trained = plan.steps > 0  # a teacher loaded from a file has its val rows only
    rows = sorted(rows, key=lambda r: (r["step"], not is_step_metric(r["name"])))
    body: list[tuple[float, Event]] = []
    if trained:
        body.append((rows[0]["wall_time"], PhaseStarted(run_id, plan.name, plan.epochs,
                                                        plan.steps_per_epoch)))
    for (step, epoch, per_step), group in groupby(
            rows, key=lambda r: (r["step"], r["epoch"], is_step_metric(r["name"]))):
        group = list(group)
        values = {row["name"]: row["value"] for row in group}
        event: Event = (
            Step(run_id, plan.name, epoch, plan.epochs, step, plan.steps, offset + step,
                 run_steps, values) if per_step else
            Epoch(run_id, plan.name, epoch, plan.epochs, step, values))
        body.append((group[-1]["wall_time"], event))
    if trained and ran_to_end:
        body.append((rows[-1]["wall_time"], PhaseFinished(run_id, plan.name)))
    return body


def replay_events(store: Store, run_id: int) -> list[tuple[float, Event]]:
    """(wall time, event) pairs as `engine.run` would have emitted them for this run:
    RunStarted, then per phase its start, steps and epochs and its end, then RunFinished
    (when the run has ended). Raises KeyError for an unknown run."""
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run #{run_id}")
    every = store.metrics(run_id)
    rows = [row for row in every  # test rows come back as PhaseTested events
            if row["phase"] in PHASES and not row["name"].startswith("test/")]
    tested = {row["phase"]: row for row in every if row["name"] == "test/acc"}
    started = iso_seconds(run.get("created_at"))
    if started is None:
        started = rows[0]["wall_time"] if rows else 0.0
    by_phase = {phase: [row for row in rows if row["phase"] == phase] for phase in PHASES}
    plan = run_plan(run, by_phase)
    events: list[tuple[float, Event]] = [(started, RunStarted(
        run_id, run.get("name", ""), run["config"], run.get("device") or "", plan,
        replay=True))]
    logs: list[tuple[float, Event]] = [
        (line["wall_time"], Log(run_id, line["level"], line["message"]))
        for line in store.logs(run_id)]
    note = f"Replayed from the history: {len(rows):,} metric rows, {len(logs):,} log lines"
    if not logs:
        note += " (a run from a version that did not keep the log)"
    events.append((started, Log(run_id, "info", note)))
    body: list[tuple[float, Event]] = []
    last_time = started
    for phase in plan.phases:
        phase_rows = by_phase.get(phase.name, [])
        if not phase_rows:  # not started (or nothing to train: a loaded teacher)
            continue
        later = PHASES[PHASES.index(phase.name) + 1:]
        last_epoch = any(row["epoch"] == phase.epochs and not is_step_metric(row["name"])
                         for row in phase_rows)
        body.extend(_phase_events(run_id, phase, phase_rows, plan.steps_before(phase.name),
                                  plan.run_steps,
                                  last_epoch or any(by_phase[other] for other in later)))
        last_time = phase_rows[-1]["wall_time"]
        test = tested.get(phase.name)
        if test is not None:
            body.append((test["wall_time"], PhaseTested(run_id, phase.name, test["value"])))
            last_time = max(last_time, test["wall_time"])
    # each log line among the rows by its time; each sequence keeps its own order
    events.extend(heapq.merge(body, logs, key=lambda pair: pair[0]))
    if run.get("status") != "running":
        finished = iso_seconds(run.get("finished_at")) or last_time
        last_time = max(last_time, logs[-1][0] if logs else last_time)
        events.append((max(finished, last_time), RunFinished(
            run_id, run.get("status") or "", run.get("error"), run.get("summary") or {})))
    return events
