"""A saved run's engine events, rebuilt from its rows in the history.

A view fed by live events (the GUI's live view) can show a finished, stopped or failed run
the way it looked when the run ended: the same curves, phase bars and summary. Each event
comes with the wall-clock time (seconds since the epoch) at which the engine wrote it, so
durations and phase times read as they did live. The run's log lines come back from the
`logs` table, in their order and at their times, after a note that this is a replay.
"""

from __future__ import annotations

import heapq
from itertools import groupby
from typing import Any

from kdstudio.core.store import Store, iso_seconds

Event = dict[str, Any]
PHASE_ORDER = ("teacher", "baseline", "student")
STEP_PREFIXES = ("loss/", "sched/")
STEP_NAMES = ("lr", "samples_per_s")


def is_step_metric(name: str) -> bool:
    """Metric names the engine writes once per optimisation step (the rest are per epoch
    or per test)."""
    return name in STEP_NAMES or name.startswith(STEP_PREFIXES)


def _planned_epochs(config: dict[str, Any], phase: str) -> int:
    section = config.get("teacher", {}) if phase == "teacher" else config.get("optim", {})
    epochs = section.get("epochs", 0)
    return int(epochs) if isinstance(epochs, (int, float)) else 0


def _planned_phases(run: dict[str, Any], by_phase: dict[str, list[dict[str, Any]]]
                    ) -> list[dict[str, Any]]:
    """The phases as the engine planned them (name, epochs, steps), those that never
    started included. Runs written before the plan was stored: the phases with rows,
    worked out from the config and the rows."""
    plan = [p for p in run.get("plan") or [] if isinstance(p, dict)]
    if plan:
        return [{"name": str(p["name"]), "epochs": int(p["epochs"]), "steps": int(p["steps"])}
                for p in plan]
    phases = []
    for phase in PHASE_ORDER:
        step_rows = [row for row in by_phase[phase] if is_step_metric(row["name"])]
        if not by_phase[phase]:
            continue
        per_epoch = len({row["step"] for row in step_rows if row["epoch"] == 1})
        epochs = max(_planned_epochs(run["config"], phase),
                     max(row["epoch"] for row in by_phase[phase]))
        done = max((row["step"] for row in step_rows), default=0)
        phases.append({"name": phase, "epochs": epochs, "steps": max(per_epoch * epochs, done)})
    return phases


def replay_events(store: Store, run_id: int) -> list[tuple[float, Event]]:
    """(wall time, event) pairs as `engine.run` would have emitted them for this run:
    run_started, then per phase its start, steps and epochs and its end, then run_finished
    (when the run has ended). Raises KeyError for an unknown run."""
    run = store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run #{run_id}")
    rows = [row for row in store.metrics(run_id)  # test rows: the summary carries them
            if row["phase"] in PHASE_ORDER and not row["name"].startswith("test/")]
    started = iso_seconds(run.get("created_at"))
    if started is None:
        started = rows[0]["wall_time"] if rows else 0.0
    by_phase = {phase: [row for row in rows if row["phase"] == phase] for phase in PHASE_ORDER}
    phases = _planned_phases(run, by_phase)
    run_steps = sum(p["steps"] for p in phases)
    events: list[tuple[float, Event]] = [(started, {
        "type": "run_started", "run_id": run_id, "name": run.get("name", ""),
        "config": run["config"], "device": run.get("device") or "", "phases": phases,
        "run_steps": run_steps, "replay": True})]
    logs = [(line["wall_time"], {"type": "log", "run_id": run_id, "level": line["level"],
                                 "message": line["message"]}) for line in store.logs(run_id)]
    note = f"Replayed from the history: {len(rows):,} metric rows, {len(logs):,} log lines"
    if not logs:
        note += " (a run from a version that did not keep the log)"
    events.append((started, {"type": "log", "run_id": run_id, "level": "info",
                             "message": note}))
    body: list[tuple[float, Event]] = []
    offset = 0
    last_time = started
    for plan in phases:
        phase, phase_rows = plan["name"], by_phase.get(plan["name"], [])
        if not phase_rows:  # not started (or nothing to train: a loaded teacher)
            offset += plan["steps"]
            continue
        trained = plan["steps"] > 0  # a teacher loaded from a file has its val rows only
        if trained:
            body.append((phase_rows[0]["wall_time"], {
                "type": "phase", "run_id": run_id, "phase": phase, "state": "started",
                "epochs": plan["epochs"],
                "steps_per_epoch": plan["steps"] // max(plan["epochs"], 1)}))
        for (step, epoch, per_step), group in groupby(
                phase_rows, key=lambda r: (r["step"], r["epoch"], is_step_metric(r["name"]))):
            group = list(group)
            values = {row["name"]: row["value"] for row in group}
            when = group[-1]["wall_time"]
            if per_step:
                event = {"type": "step", "run_id": run_id, "phase": phase, "epoch": epoch,
                         "epochs": plan["epochs"], "step": step, "steps": plan["steps"],
                         "run_step": offset + step, "run_steps": run_steps, "values": values}
            else:
                event = {"type": "epoch", "run_id": run_id, "phase": phase, "epoch": epoch,
                         "epochs": plan["epochs"], "step": step, "values": values}
            body.append((when, event))
        last_time = phase_rows[-1]["wall_time"]
        later = PHASE_ORDER[PHASE_ORDER.index(phase) + 1:]
        last_epoch = any(row["epoch"] == plan["epochs"] and not is_step_metric(row["name"])
                         for row in phase_rows)
        if trained and (last_epoch or any(by_phase[other] for other in later)):  # ran to the end
            body.append((last_time, {"type": "phase", "run_id": run_id, "phase": phase,
                                     "state": "finished"}))
        offset += plan["steps"]
    # each log line among the rows by its time; each sequence keeps its own order
    events.extend(heapq.merge(body, logs, key=lambda pair: pair[0]))
    if run.get("status") != "running":
        finished = iso_seconds(run.get("finished_at")) or last_time
        last_time = max(last_time, logs[-1][0] if logs else last_time)
        events.append((max(finished, last_time), {
            "type": "run_finished", "run_id": run_id, "status": run.get("status"),
            "error": run.get("error"), "summary": run.get("summary") or {}}))
    return events
