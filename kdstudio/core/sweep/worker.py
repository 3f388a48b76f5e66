"""A trial process: `python -m kdstudio.core.sweep.worker` runs the trials it is given on
stdin (one JSON object a line) one after the other, importing torch once. A line
`{"check": [[label, config], ...]}` asks for the trials' `TrialFacts` instead (answered
`checked`).

Each holds the trial's config, the history's path and the sweep's group id (and, for a
trial started before the sweep's teacher was trained, the run training it). The run is
recorded by this process as any run (its row has the group id and this pid); progress
goes to stdout as one JSON object a line, prefixed with `MARK`. SIGTERM or SIGINT stops
the run between two batches (kept as `stopped`)."""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from kdstudio.core.store import Store

MARK = "@kdsweep "


class SweepStore(Store):
    """A history whose new runs carry the sweep's group id and a note on the trial."""

    def __init__(self, path: str | Path, group_id: str, notes: str) -> None:
        super().__init__(path)
        self.group_id = group_id
        self.notes = notes

    def create_run(self, config: dict[str, Any], **fields: Any) -> int:
        return super().create_run(config, **fields | {"group_id": self.group_id,
                                                      "notes": self.notes})


def say(**message: Any) -> None:
    sys.stdout.write(MARK + json.dumps(message, default=str) + "\n")
    sys.stdout.flush()


class SweepTeacher:
    """The sweep's teacher, being trained by another trial (run `owner`): complete once
    that run's teacher sidecar (written after the weights) is there; unavailable once that
    run has ended without it. Says "waiting" and "resumed" to the sweep (a waiting trial
    does not hold a worker)."""

    def __init__(self, store: Store, owner: int, report: Any) -> None:
        self.store, self.owner, self.report = store, owner, report
        self.sidecar = store.artifact_dir(owner) / "teacher.json"
        self.waited = False

    def describe(self) -> str:
        return f"run {self.owner}'s teacher"

    def ready(self) -> bool:
        from kdstudio.core.engine import TeacherUnavailable

        if not self.sidecar.is_file():
            row = self.store.get_run(self.owner)
            if row is None or row["status"] != "running":
                if self.sidecar.is_file():  # saved just before the run ended
                    return self._came()
                status = row["status"] if row else "deleted"
                why = f" ({row['error']})" if row and row.get("error") else ""
                raise TeacherUnavailable(f"the sweep's teacher was not trained: run "
                                         f"{self.owner} ended {status}{why}")
            if not self.waited:
                self.waited = True
                self.report(type="waiting", teacher_run_id=self.owner)
            return False
        return self._came()

    def _came(self) -> bool:
        if self.waited:
            self.report(type="resumed", teacher_run_id=self.owner)
            self.waited = False
        return True


def run_trial(payload: dict[str, Any], should_stop: Any = None,
              report: Any = say) -> dict[str, Any]:
    """Validate and run one trial; returns {run_id, status, summary, error}."""
    from kdstudio.core.config import ConfigError, config_from_dict, validate
    from kdstudio.core.engine import run
    from kdstudio.core.events import PhaseTested, RunStarted

    config, problems = config_from_dict(payload["config"])
    store = SweepStore(payload["db"], payload["group_id"], payload.get("notes", ""))
    owner = payload.get("teacher_from")
    late = SweepTeacher(store, owner, report) if owner is not None else None
    try:
        problems += validate(config, store=store, teacher_file_later=late is not None)
        if problems:
            return {"run_id": None, "status": "failed", "summary": {},
                    "error": "; ".join(problems)}
        teacher_tested: list[int] = []

        def on_event(event: Any) -> None:
            if isinstance(event, RunStarted):
                report(type="started", run_id=event.run_id, pid=os.getpid())
            elif isinstance(event, PhaseTested) and event.phase == "teacher":
                teacher_tested.append(event.run_id)
            elif len(teacher_tested) == 1:  # saved once its sidecar (written last) is
                folder = store.artifact_dir(teacher_tested[0])
                if (folder / "teacher.json").is_file():
                    teacher_tested.append(-1)
                    report(type="teacher", run_id=teacher_tested[0],
                           path=str(folder / "teacher.safetensors"))

        try:
            result = run(config, store, on_event, should_stop, teacher_later=late)
        except ConfigError as error:
            return {"run_id": None, "status": "failed", "summary": {},
                    "error": "; ".join(error.problems)}
        return {"run_id": result.run_id, "status": result.status, "summary": result.summary,
                "error": result.error}
    finally:
        store.close()


def check_trials(labelled: list[list[Any]]) -> dict[str, Any]:
    """The `TrialFacts` of (label, config) pairs, as a message's fields; an error in the
    check itself is the sweep's one problem."""
    from dataclasses import asdict

    from kdstudio.core.sweep.trials import trial_facts

    try:
        return asdict(trial_facts([(label, config) for label, config in labelled]))
    except Exception as error:  # noqa: BLE001 - reported to the sweep, which stops
        return {"problems": [f"checking the trials failed: {type(error).__name__}: {error}"],
                "teacher_methods": {}, "auto_device": "cpu"}


def main(argv: list[str]) -> int:
    """Run the trials given on stdin, one JSON object a line, until stdin ends (or the one
    in the file `argv[0]`)."""
    stop: list[int] = []

    def handle(signum: int, _frame: Any) -> None:
        stop.append(signum)

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, handle)
    # imported while the sweep may still be waiting; torch.optim imports dynamo on first use
    import torch._dynamo  # noqa: F401

    import kdstudio.core.engine  # noqa: F401

    gc.freeze()  # the collection after each trial then skips the imported modules' objects

    lines = [Path(argv[0]).read_text(encoding="utf-8")] if argv else sys.stdin
    for line in lines:
        if not line.strip():
            continue
        stop.clear()
        payload = json.loads(line)
        if "check" in payload:
            say(type="checked", **check_trials(payload["check"]))
            continue
        try:
            result = run_trial(payload, lambda: bool(stop))
        except Exception as error:  # noqa: BLE001 - reported to the sweep as the trial's error
            result = {"run_id": None, "status": "failed", "summary": {},
                      "error": f"{type(error).__name__}: {error}"}
        say(type="finished", **result)
        gc.collect()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
