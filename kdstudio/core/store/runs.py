"""A run's life in the history: created, updated, finished (or found dead and marked
interrupted), reopened to resume, deleted; and the export rows recorded for it.

Starting and finishing a run wait up to `patience_s` (PATIENT_SECONDS) for another
process's write lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kdstudio.core.store.connection import BUSY_MS
from kdstudio.core.store.errors import HistoryLocked, HistoryWriteError
from kdstudio.core.store.rows import count_of, now_iso
from kdstudio.core.store.writes import BufferedWrites

STATUSES = ("running", "completed", "stopped", "failed", "interrupted")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunRecords(BufferedWrites):
    """Writes that create, change or end runs."""

    def _configure_and_migrate(self) -> None:
        super()._configure_and_migrate()
        self.mark_interrupted()

    def mark_interrupted(self) -> int:
        """Rows left `running` by a process of this machine that no longer exists become
        `interrupted`."""
        host = socket.gethostname()
        dead = [
            row["id"]
            for row in self.db.query("SELECT id, pid, host FROM runs WHERE status = 'running'")
            # a run of another machine sharing this file cannot be judged from here
            if row["host"] == host and (row["pid"] is None or not _process_alive(row["pid"]))
        ]
        if not dead:
            return 0
        with self.writing(), self.db.atomic():
            for run_id in dead:
                self.db["runs"].update(run_id, {
                    "status": "interrupted", "finished_at": now_iso(),
                    "error": "the process running it ended before it finished",
                })
        for run_id in dead:  # the disk it kept in reserve (a killed process leaves it)
            self._release_reserve(run_id)
        return len(dead)

    # ------------------------------------------------------------ runs

    def create_run(self, config: dict[str, Any], **fields: Any) -> int:
        row = {
            "name": config.get("name") or "run",
            "created_at": now_iso(),
            "status": "running",
            "config": json.dumps(self._portable_teacher(config)),
            "seed": config.get("seed"),
            "dataset": config.get("data", {}).get("dataset"),
            "teacher_arch": config.get("teacher", {}).get("arch"),
            "student_arch": config.get("student", {}).get("arch"),
            "method": config.get("distill", {}).get("method"),
            "temperature": config.get("distill", {}).get("temperature"),
            "ce_weight": config.get("distill", {}).get("ce_weight"),
            "kd_weight": config.get("distill", {}).get("kd_weight"),
            "feature_weight": config.get("distill", {}).get("feature_weight"),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "tags": "[]",
            "notes": "",
            **fields,
        }
        ids: list[int] = []
        self._transaction(lambda: ids.append(self.db["runs"].insert(row).last_pk),
                          self.patience_s, "the new run")
        self._live_runs.add(ids[0])
        self._reserve_space(ids[0])
        return ids[0]

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Change columns of a run: for a run in progress in this store, buffered with its
        metric rows; otherwise written at once."""
        encoded = {
            key: json.dumps(value) if isinstance(value, (dict, list)) else value
            for key, value in fields.items()
        }
        if run_id in self._live_runs:
            self.check_writable()  # a buffered change is refused as a write is
            self._run_updates.setdefault(run_id, {}).update(encoded)
            return
        self._transaction(lambda: self.db["runs"].update(run_id, encoded), BUSY_MS / 1000,
                          f"run #{run_id}")

    def finish_run(self, run_id: int, status: str, error: str | None = None, **fields: Any
                   ) -> tuple[str, str | None]:
        """Write everything buffered and the run's end; returns the (status, error) written.

        Waits up to `patience_s` for another process's lock. When the buffered rows cannot
        be written (disk full), they are dropped and the run is recorded `failed`, its error
        saying why and how many metric rows were lost. Raises HistoryWriteError when even
        the run row cannot be written (the next open then marks the run interrupted); the
        run's buffered rows are dropped either way.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self._live_runs.discard(run_id)
        try:
            return self._finish(run_id, status, error, fields)
        except Exception:  # nothing of the run is left to write later (close must not fail)
            self._drop_buffers(run_id, keep_run_row=False)
            raise
        finally:
            self._release_reserve(run_id)

    def _finish(self, run_id: int, status: str, error: str | None, fields: dict[str, Any]
                ) -> tuple[str, str | None]:
        end = {"status": status, "error": error, "finished_at": now_iso()}
        self._run_updates.setdefault(run_id, {}).update(
            {key: json.dumps(value) if isinstance(value, (dict, list)) else value
             for key, value in fields.items()} | end)
        try:
            self._write_buffers(self.patience_s)
            return status, error
        except HistoryLocked:
            raise
        except HistoryWriteError as failure:
            if self._release_reserve(run_id):  # room for the rows, or at least the end
                with contextlib.suppress(HistoryWriteError):
                    self._write_buffers(self.patience_s)
                    return status, error  # nothing lost
            lost, lines = self._drop_buffers(run_id, keep_run_row=True)
            reason = f"{count_of(lost, 'metric row')} and {count_of(lines, 'log line')} were lost"
            error = f"{error}; {reason}" if error else f"{failure}; {reason}"
        end = {"status": "failed", "error": error, "finished_at": now_iso()}
        self._run_updates[run_id].update(end)
        try:
            self._write_buffers(self.patience_s)
        except HistoryWriteError:  # a smaller change may still fit: the end alone
            self._run_updates[run_id] = end
            try:
                self._write_buffers(self.patience_s)
            finally:
                self._run_updates.pop(run_id, None)
        return "failed", error

    def delete_run(self, run_id: int) -> None:
        """Delete a run, its metric rows, log lines, artifact rows and files."""
        self.flush()

        def delete() -> None:
            for table in ("metrics", "logs", "artifacts"):
                self.db.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            self.db.execute("DELETE FROM runs WHERE id = ?", [run_id])

        self._transaction(delete, BUSY_MS / 1000, f"the deletion of run #{run_id}")
        shutil.rmtree(self.artifact_dir(run_id), ignore_errors=True)

    # ------------------------------------------------------------ resume

    def reopen_run(self, run_id: int, phases: list[str], step: int) -> bool:
        """Take a `stopped` or `interrupted` run back to `running` in this process (this pid
        and host) to resume it from a checkpoint taken after `step` steps of `phases[0]`, and
        delete, in the same transaction, what it wrote after that checkpoint: metric rows of
        `phases` except `phases[0]`'s rows up to `step` (its test rows go too), and artifact
        rows of `phases`. Its later writes are buffered and backed by a disk reserve as a
        new run's are. False (nothing changed) when the run is not stopped or interrupted
        any more. Waits up to `patience_s` for another process's lock."""
        self.flush()
        marks = ", ".join("?" * len(phases))
        claimed: list[int] = []

        def claim() -> None:
            count = self.db.execute(
                "UPDATE runs SET status = 'running', pid = ?, host = ?, finished_at = NULL, "
                "error = NULL WHERE id = ? AND status IN ('stopped', 'interrupted')",
                [os.getpid(), socket.gethostname(), run_id]).rowcount
            claimed.append(count)
            if not count:
                return
            self.db.execute(
                f"DELETE FROM metrics WHERE run_id = ? AND phase IN ({marks}) AND NOT "
                "(phase = ? AND step <= ? AND name != 'test/acc')",
                [run_id, *phases, phases[0], step])
            self.db.execute(f"DELETE FROM artifacts WHERE run_id = ? AND kind IN ({marks})",
                            [run_id, *phases])

        self._transaction(claim, self.patience_s, f"run #{run_id}")
        if not claimed[0]:
            return False
        self._live_runs.add(run_id)
        self._reserve_space(run_id)
        return True

    # ------------------------------------------------------------ export rows, statistics

    def replace_artifacts(self, run_id: int, kind: str,
                          files: Iterable[tuple[Path, str, dict[str, Any] | None]]) -> None:
        """In one transaction, for each (path, format, meta): drop the run's `kind` rows that
        name the path, and record the file again when it exists, so a file written anew
        keeps one row and a file that is gone keeps none."""
        entries = [(Path(path), fmt, meta) for path, fmt, meta in files]

        def replace() -> None:
            for path, fmt, meta in entries:
                self.db.execute(
                    "DELETE FROM artifacts WHERE run_id = ? AND kind = ? AND path = ?",
                    [run_id, kind, self.stored_path(path)])
                if path.is_file():
                    self.add_artifact(run_id, kind, path, fmt, meta)

        self._transaction(replace, BUSY_MS / 1000, f"the {kind} files of run #{run_id}")

    def analyze(self) -> None:
        """Refresh SQLite's query-planner statistics (after loading many rows at once)."""
        self._transaction(lambda: self.db.execute("ANALYZE"), BUSY_MS / 1000,
                          "the query statistics")
