"""The history's schema, as sqlite-utils migrations applied in order when a Store opens."""

from __future__ import annotations

import json
import re
from pathlib import Path

import sqlite_utils
from sqlite_utils import Migrations

from kdstudio.core.store.rows import json_or

migrations = Migrations("kdstudio")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db["runs"].create(
        {
            "id": int, "name": str, "created_at": str, "finished_at": str, "status": str,
            "error": str, "config": str, "device": str, "env": str, "seed": int,
            "dataset": str, "teacher_arch": str, "student_arch": str, "method": str,
            "temperature": float, "ce_weight": float, "kd_weight": float,
            "feature_weight": float, "teacher_params": int, "student_params": int,
            "teacher_size_mb": float, "student_size_mb": float, "compression": float,
            "teacher_best_val_acc": float, "teacher_last_val_acc": float,
            "teacher_test_acc": float, "baseline_best_val_acc": float,
            "baseline_last_val_acc": float, "baseline_test_acc": float,
            "student_best_val_acc": float, "student_last_val_acc": float,
            "student_test_acc": float, "kd_gain": float, "duration_s": float,
            "summary": str, "tags": str, "notes": str, "group_id": str, "pid": int, "host": str,
        },
        pk="id",
        not_null={"created_at", "status", "config"},
        defaults={"tags": "[]", "notes": ""},
    )
    db["metrics"].create(
        {"run_id": int, "phase": str, "step": int, "epoch": int, "name": str, "value": float,
         "wall_time": float},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["metrics"].create_index(["run_id", "name", "phase"])
    db["artifacts"].create(
        {"id": int, "run_id": int, "kind": str, "path": str, "format": str, "sha256": str,
         "created_at": str, "meta": str},
        pk="id",
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["artifacts"].create_index(["run_id"])
    db["runs"].create_index(["status"])


@migrations()
def m002_current_phase(db: sqlite_utils.Database) -> None:
    """The phase a running run is in, so a history view need not search its metric rows."""
    db["runs"].add_column("current_phase", str)


@migrations()
def m003_run_plan(db: sqlite_utils.Database) -> None:
    """The phases a run planned (name, epochs, steps) as JSON, so a saved run can be shown
    with the progress it would have had, even if it stopped early."""
    db["runs"].add_column("plan", str)


@migrations()
def m004_run_logs(db: sqlite_utils.Database) -> None:
    """Every log line a run emits, in order, with its time and level."""
    db["logs"].create(
        {"run_id": int, "seq": int, "wall_time": float, "level": str, "message": str},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["logs"].create_index(["run_id", "seq"])

@migrations()
def m005_relative_artifact_paths(db: sqlite_utils.Database) -> None:
    """Artifact paths (and a reused teacher's checkpoint in a run's config) that lie in the
    history's `-artifacts` folder become relative to the history's folder; others stay."""
    history = Path(db.execute("PRAGMA database_list").fetchone()[2])
    root_name = f"{history.stem}-artifacts"
    for artifact_id, run_id, path in db.execute(
            "SELECT id, run_id, path FROM artifacts").fetchall():
        relative = _relative_to_history(path, history.parent, root_name, run_id)
        if relative is not None and relative != path:
            db.execute("UPDATE artifacts SET path = ? WHERE id = ?", [relative, artifact_id])
    for run_id, text in db.execute("SELECT id, config FROM runs").fetchall():
        config = json_or(text, {})
        teacher = config.get("teacher")
        if not isinstance(teacher, dict) or not isinstance(teacher.get("checkpoint"), str):
            continue
        relative = _relative_to_history(teacher["checkpoint"], history.parent, root_name)
        if relative is not None and relative != teacher["checkpoint"]:
            teacher["checkpoint"] = relative
            db.execute("UPDATE runs SET config = ? WHERE id = ?", [json.dumps(config), run_id])


_RUN_FOLDER = re.compile(r"run-(\d+)")


def _relative_to_history(path: str, folder: Path, root_name: str,
                         run_id: int | None = None) -> str | None:
    """`<root_name>/run-N/<file>` for a path in the history's artifacts folder, found by
    its location or, for a history moved or a path stored relative to some working
    folder, by its last three parts (the run folder must be `run_id`'s when given); None
    when the path is not one of the history's artifacts."""
    if not path:
        return None
    candidate = Path(path)
    root = folder / root_name
    if candidate.is_absolute():
        try:
            return (Path(root_name) / candidate.relative_to(root)).as_posix()
        except ValueError:
            pass
    parts = candidate.parts
    if len(parts) < 3 or parts[-3] != root_name:
        return None
    match = _RUN_FOLDER.fullmatch(parts[-2])
    if match is None or (run_id is not None and int(match.group(1)) != run_id):
        return None
    relative = Path(root_name, parts[-2], parts[-1])
    if run_id is None and not (folder / relative).is_file():
        return None  # a teacher file named like ours but not in this history's folder
    return relative.as_posix()
