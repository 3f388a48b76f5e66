"""Run history in one SQLite file (sqlite-utils): runs, metrics and artifacts.

One `Store` per thread: a file connection is bound to the thread that opened it.
Metrics are buffered and written in batches, never more than `FLUSH_SECONDS` behind.

Every write goes through `Store.writing()`: before the first one the file's pages are checked
once per process, and before each one the guard looks (by `os.stat`, never by opening) whether
the database file or its `-wal` was replaced or deleted under the open connection. On damage
the Store refuses every later write and closes without checkpointing its stale log.

Artifact paths are stored relative to the history file's folder (`stored_path`) and read back
through `artifact_file`, so a history and its `-artifacts` folder can move together.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils import Migrations

from kdstudio.core import history_files
from kdstudio.core.history_files import (
    HistoryDamaged,
    HistoryError,
    HistoryMissing,
    file_id,
    is_damage_error,
    wal_path,
)
from kdstudio.core.paths import default_db_path

__all__ = ["HistoryDamaged", "HistoryError", "HistoryMissing", "Store"]

FLUSH_SECONDS = 0.5
STATUSES = ("running", "completed", "stopped", "failed", "interrupted")

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
        config = _json_or(text, {})
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


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def iso_seconds(iso: str | None) -> float | None:
    """Seconds since the epoch of a time stored by `now_iso`; None if empty or unreadable."""
    if not iso:
        return None
    try:
        return dt.datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _open_stores(identity: tuple[int, int] | None) -> list[Store]:
    """The Stores of this process with the file of this identity open."""
    if identity is None:
        return []
    with _STORES_LOCK:
        stores = list(_STORES)
    return [store for store in stores if store._db_id == identity and store.is_open]


def _wal_changed_under_open_stores(identity: tuple[int, int] | None,
                                   wal_now: tuple[int, int] | None) -> bool:
    """Is the file open in a Store of this process whose `-wal` has since been replaced or
    deleted? (A new connection would share that Store's stale wal-index.)"""
    return any(store._wal_id is not None and store._wal_id != wal_now
               for store in _open_stores(identity))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# The Stores of this process, to ask what the open ones know about a file: whether one
# checked its pages (while it is open the file cannot be swapped for another with the same
# inode number), and which `-wal` they found (SQLite shares one wal-index per file within a
# process, so a new connection to a file whose `-wal` changed under the open ones would
# inherit their stale index).
_STORES: weakref.WeakSet[Store] = weakref.WeakSet()
_STORES_LOCK = threading.Lock()  # a GUI thread and its worker open Stores side by side
_RESTART = ("this history lost its write-ahead log while this process had it open; restart "
            "KD Studio to open it again")


class Store:
    """The history database. Opening it applies migrations and marks dead runs interrupted.

    `create=False` (the read commands) opens only an existing history and creates nothing:
    a missing folder or file raises HistoryMissing. A file that is not a KD Studio history
    raises HistoryDamaged, as does one whose pages fail SQLite's quick_check before the
    first write (with `create=True`, before anything is opened for writing).
    """

    def __init__(self, path: str | Path | None = None, *, create: bool = True) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.file = Path(os.path.abspath(self.path.expanduser()))
        self._damage: str | None = None
        self._stale_log = False  # the -wal or the file was replaced or deleted under us
        self._closed = False
        self._checked_id: tuple[int, int] | None = None  # set once this Store checked pages
        self._db_id: tuple[int, int] | None = None
        self._buffer: list[tuple] = []
        self._last_flush = time.monotonic()
        self._open_file(create)
        self.db = sqlite_utils.Database(self.file)
        try:
            self._configure_and_migrate()
        except BaseException:
            self.close()
            raise

    def _open_file(self, create: bool) -> None:
        """Check the folder and the file before SQLite opens it for writing."""
        folder = self.file.parent
        if not folder.is_dir():
            if not create:
                raise HistoryMissing(self.path, f"the folder {folder} does not exist")
            folder.mkdir(parents=True, exist_ok=True)
        try:
            size = self.file.stat().st_size
        except FileNotFoundError:
            if not create:
                raise HistoryMissing(self.path, f"no history at {self.file}") from None
            size = 0
        if size == 0 and not create:
            raise HistoryMissing(self.path, f"no history at {self.file} (the file is empty)")
        if self.file.is_dir():
            raise HistoryMissing(self.path, f"{self.file} is a folder, not a history file")
        identity = file_id(self.file)
        if identity in history_files.KEPT_OPEN_FILES:
            raise HistoryDamaged(self.path, _RESTART)
        if _wal_changed_under_open_stores(identity, file_id(wal_path(self.file))):
            raise HistoryDamaged(self.path, _RESTART)
        if size:
            history_files.probe(self.file, pages=create and not self._pages_checked())
            if create:
                self._mark_pages_checked()

    def _configure_and_migrate(self) -> None:
        self.db.execute("PRAGMA busy_timeout = 10000")
        try:
            self.db.enable_wal()
        except sqlite3.DatabaseError as error:
            if is_damage_error(error):
                raise HistoryDamaged(self.path, history_files.damage_message(error)) from None
            raise
        # WAL + NORMAL: a commit never corrupts the file and costs no fsync; a power cut can
        # lose the last half-second of metrics at most
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute("PRAGMA foreign_keys = ON")
        pending = migrations.pending(self.db)  # a read: the -wal exists from here on
        self._db_id = file_id(self.file)
        self._wal_id = file_id(wal_path(self.file))
        with _STORES_LOCK:
            _STORES.add(self)
        if pending:
            with self.writing():
                migrations.apply(self.db)
        self.mark_interrupted()

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Write what is buffered and close. A Store that found damage writes nothing more;
        one whose `-wal` or file was replaced under it closes without checkpointing its stale
        log into the file (`damage` says what it found)."""
        if self._closed:
            return
        try:
            if self._damage is None:
                with suppress(HistoryDamaged):
                    self.flush()
            if self._damage is None:
                found = self._detect_lost_files()
                if found:
                    self._damage, self._stale_log = found, True
        finally:
            self._closed = True
            self._checked_id = None
            if self._stale_log:
                self.checkpoint_guard = history_files.keep_wal_out(self.db.conn, self.file,
                                                                   self._db_id)
            if self.checkpoint_guard != "kept open":
                self.db.close()

    checkpoint_guard = ""  # how a damaged Store kept its log out of the file on close

    @property
    def damage(self) -> str | None:
        """What the guard found wrong (None while the history is sound)."""
        return self._damage

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ the write guard

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Wrap every write: refuses (HistoryDamaged) once damage was found, checks the
        pages before the first write of this process, looks for a replaced file or a lost
        `-wal`, and turns SQLite's damage errors into HistoryDamaged."""
        self.check_writable()
        try:
            yield
        except sqlite3.DatabaseError as error:
            if is_damage_error(error):
                self._refuse(f"SQLite found the file damaged while writing ({error})")
            raise

    def check_writable(self) -> None:
        """Raise HistoryDamaged unless a write may go ahead."""
        if self._damage is not None:
            raise HistoryDamaged(self.path, self._damage)
        found = self._detect_lost_files()
        if found:
            self._stale_log = True
            self._refuse(found)
        if not self._pages_checked():
            problems = self._quick_check()
            if problems:
                self._refuse(history_files.pages_message(problems))
            self._mark_pages_checked()

    def _quick_check(self) -> list[str]:
        return history_files.quick_check(self.db.conn)

    @property
    def is_open(self) -> bool:
        """Opened and not yet closed (read from any thread: no SQLite call)."""
        return not self._closed

    def _pages_checked(self) -> bool:
        if self._checked_id is not None:
            return True
        identity = file_id(self.file)
        return identity is not None and any(
            store._checked_id == identity for store in _open_stores(identity))

    def _mark_pages_checked(self) -> None:
        if self._checked_id is None:
            self._checked_id = file_id(self.file)

    def _detect_lost_files(self) -> str | None:
        """What happened to the files under the open connection, or None if nothing."""
        now = file_id(self.file)
        if now is None:
            return "the history file was deleted or moved away while KD Studio had it open"
        if now != self._db_id:
            return "the history file was replaced by another file while KD Studio had it open"
        wal = wal_path(self.file)
        wal_now = file_id(wal)
        if self._wal_id is None:
            self._wal_id = wal_now
            return None
        if wal_now is None:
            return (f"its write-ahead log {wal.name} was deleted by another program while "
                    "KD Studio had the history open (that program took it for unused, as "
                    "happens when locks are lost); nothing more is written, so that nothing "
                    "committed is overwritten")
        if wal_now != self._wal_id:
            return (f"its write-ahead log {wal.name} was replaced by another program while "
                    "KD Studio had the history open; nothing more is written, so that "
                    "nothing committed is overwritten")
        return None

    def _refuse(self, problem: str) -> None:
        self._damage = problem
        raise HistoryDamaged(self.path, problem)

    # ------------------------------------------------------------ artifact files

    @property
    def artifacts_root(self) -> Path:
        """The `<stem>-artifacts` folder beside the history file."""
        return self.file.parent / f"{self.file.stem}-artifacts"

    def artifact_dir(self, run_id: int) -> Path:
        return self.artifacts_root / f"run-{run_id}"

    def stored_path(self, path: str | Path) -> str:
        """How a file's path is stored: relative to the history's folder when it lies in the
        history's artifacts folder, else absolute."""
        absolute = Path(os.path.abspath(Path(path).expanduser()))
        try:
            inside = absolute.relative_to(self.artifacts_root)
        except ValueError:
            return str(absolute)
        return (Path(self.artifacts_root.name) / inside).as_posix()

    def artifact_file(self, stored: str | Path) -> Path:
        """The file a stored artifact path names, wherever the history now is."""
        path = Path(stored)
        return path if path.is_absolute() else self.file.parent / path

    def _resolve_teacher(self, config: dict[str, Any]) -> dict[str, Any]:
        """A config whose teacher checkpoint is a history artifact, with its path resolved."""
        teacher = config.get("teacher")
        if isinstance(teacher, dict) and _is_history_relative(teacher.get("checkpoint"),
                                                               self.artifacts_root.name):
            teacher["checkpoint"] = str(self.artifact_file(teacher["checkpoint"]))
        return config

    def _portable_teacher(self, config: dict[str, Any]) -> dict[str, Any]:
        """A copy of the config whose teacher checkpoint, when it is one of this history's
        artifacts, is stored relative to the history's folder."""
        teacher = config.get("teacher")
        checkpoint = teacher.get("checkpoint") if isinstance(teacher, dict) else None
        if not checkpoint or not isinstance(checkpoint, str):
            return config
        stored = self.stored_path(checkpoint)
        if not _is_history_relative(stored, self.artifacts_root.name):
            return config
        return {**config, "teacher": {**teacher, "checkpoint": stored}}

    def _decode(self, row: dict[str, Any]) -> dict[str, Any]:
        run = _decode_run(row)
        run["config"] = self._resolve_teacher(run["config"])
        return run

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
        with self.writing():
            return self.db["runs"].insert(row).last_pk

    def update_run(self, run_id: int, **fields: Any) -> None:
        encoded = {
            key: json.dumps(value) if isinstance(value, (dict, list)) else value
            for key, value in fields.items()
        }
        with self.writing():
            self.db["runs"].update(run_id, encoded)

    def finish_run(self, run_id: int, status: str, error: str | None = None, **fields: Any) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self.flush()
        self.update_run(run_id, status=status, error=error, finished_at=now_iso(), **fields)

    def get_run(self, run_id: int) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        return self._decode(rows[0]) if rows else None

    def find_run(self, key: str | int) -> dict[str, Any] | None:
        """A run by id, or the newest run with that name."""
        text = str(key)
        if text.isdigit():
            return self.get_run(int(text))
        rows = list(self.db.query(
            "SELECT * FROM runs WHERE name = ? ORDER BY id DESC LIMIT 1", [text]))
        return self._decode(rows[0]) if rows else None

    def list_runs(
        self, status: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM runs"
        params: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY id DESC"
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        return [self._decode(row) for row in self.db.query(sql, params)]

    def delete_run(self, run_id: int) -> None:
        """Delete a run, its metric rows, its artifact rows and its files."""
        self.flush()
        with self.writing(), self.db.atomic():
            self.db.execute("DELETE FROM metrics WHERE run_id = ?", [run_id])
            self.db.execute("DELETE FROM artifacts WHERE run_id = ?", [run_id])
            self.db.execute("DELETE FROM runs WHERE id = ?", [run_id])
        shutil.rmtree(self.artifact_dir(run_id), ignore_errors=True)

    # ------------------------------------------------------------ metrics

    def add_metrics(
        self, run_id: int, phase: str, step: int, epoch: int, values: dict[str, float]
    ) -> None:
        """Buffer metric values; they reach the file at most FLUSH_SECONDS later."""
        wall = time.time()
        self.add_metric_rows([(run_id, phase, step, epoch, name, float(value), wall)
                              for name, value in values.items()])

    def add_metric_rows(self, rows: list[tuple[int, str, int, int, str, float, float]]) -> None:
        """Buffer rows of (run_id, phase, step, epoch, name, value, wall_time), as
        `add_metrics` does."""
        self._buffer.extend(rows)
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            with self.writing(), self.db.atomic():
                self.db.conn.executemany(
                    "INSERT INTO metrics (run_id, phase, step, epoch, name, value, wall_time) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    self._buffer,
                )
            self._buffer.clear()
        self._last_flush = time.monotonic()

    def metrics(
        self, run_id: int, name: str | None = None, phase: str | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT phase, step, epoch, name, value, wall_time FROM metrics WHERE run_id = ?"
        params: list[Any] = [run_id]
        if name:
            sql += " AND name = ?"
            params.append(name)
        if phase:
            sql += " AND phase = ?"
            params.append(phase)
        return list(self.db.query(sql + " ORDER BY rowid", params))

    # ------------------------------------------------------------ artifacts

    def add_artifact(
        self, run_id: int, kind: str, path: Path, fmt: str, meta: dict[str, Any] | None = None
    ) -> int:
        row = {"run_id": run_id, "kind": kind, "path": self.stored_path(path), "format": fmt,
               "sha256": sha256_of(Path(path)), "created_at": now_iso(),
               "meta": json.dumps(meta or {})}
        with self.writing():
            return self.db["artifacts"].insert(row).last_pk

    def artifacts(self, run_id: int, kind: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM artifacts WHERE run_id = ?", [run_id]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        rows = list(self.db.query(sql + " ORDER BY id", params))
        for row in rows:
            row["meta"] = json.loads(row["meta"] or "{}")
            row["path"] = str(self.artifact_file(row["path"]))  # wherever the history now is
        return rows

    # ------------------------------------------------------------ read-only queries for views

    def runs_with_artifact(self, kind: str, limit: int = 500) -> list[dict[str, Any]]:
        """Runs that have an artifact of `kind`, newest first, each with the path of its
        latest one as `artifact_path` (resolved): one query, not one per run."""
        sql = (
            "SELECT runs.*, latest.path AS artifact_path FROM runs JOIN ("
            " SELECT run_id, path, max(id) FROM artifacts WHERE kind = ? GROUP BY run_id"
            ") AS latest ON latest.run_id = runs.id ORDER BY runs.id DESC LIMIT ?")
        runs = [self._decode(row) for row in self.db.query(sql, [kind, limit])]
        for run in runs:
            run["artifact_path"] = str(self.artifact_file(run["artifact_path"]))
        return runs

    def history_signature(self) -> tuple[Any, ...]:
        """A cheap fingerprint of the runs table: it changes when a run is added, removed or
        finished, so a view can poll it and reload only on change."""
        row = self.db.execute(
            "SELECT count(*), coalesce(max(id), 0), coalesce(sum(status = 'running'), 0), "
            "coalesce(max(finished_at), ''), coalesce(sum(id * length(status)), 0) FROM runs"
        ).fetchone()
        return tuple(row)

    def list_runs_brief(self) -> list[dict[str, Any]]:
        """Every run, newest first, without the config, env and summary JSON (a table of
        all runs needs none of them; get_run has them); tags are decoded."""
        columns = [c for c in self.db["runs"].columns_dict if c not in ("config", "env",
                                                                        "summary")]
        rows = [dict(zip(columns, values, strict=True)) for values in
                self.db.execute(f"SELECT {', '.join(columns)} FROM runs ORDER BY id DESC")]
        # One JSON document for all tag lists: a thousand tiny json.loads calls cost more.
        try:
            tags = json.loads("[" + ",".join(row["tags"] or "[]" for row in rows) + "]")
        except ValueError:  # a row edited by hand: decode them one by one
            tags = [_decode_tags(row["tags"]) for row in rows]
        for row, row_tags in zip(rows, tags, strict=True):
            row["tags"] = row_tags
        return rows

    def runs_by_id(self, run_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Runs in the order of `run_ids`; unknown ids are skipped."""
        ids = [int(i) for i in run_ids]
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        found = {row["id"]: self._decode(row)
                 for row in self.db.query(f"SELECT * FROM runs WHERE id IN ({marks})", ids)}
        return [found[i] for i in ids if i in found]

    def metric_names(self, run_ids: Iterable[int]) -> list[str]:
        """The metric names recorded for any of the runs, sorted."""
        names: set[str] = set()
        for run_id in {int(i) for i in run_ids}:
            # A loose index scan: one index seek per distinct name instead of reading every
            # row of the run (the (run_id, name, phase) index keeps names in order).
            rows = self.db.execute(
                "WITH RECURSIVE names(n) AS ("
                " SELECT (SELECT min(name) FROM metrics WHERE run_id = :run)"
                " UNION ALL"
                " SELECT (SELECT min(name) FROM metrics WHERE run_id = :run AND name > n)"
                " FROM names WHERE n IS NOT NULL)"
                " SELECT n FROM names WHERE n IS NOT NULL", {"run": run_id})
            names.update(name for (name,) in rows)
        return sorted(names)

    def metric_rows(self, run_ids: Iterable[int], name: str) -> list[tuple[Any, ...]]:
        """(run_id, phase, step, epoch, value, wall_time) of one metric for many runs at once,
        in the order they were written within each run."""
        ids = [int(i) for i in run_ids]
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        return self.db.execute(
            f"SELECT run_id, phase, step, epoch, value, wall_time FROM metrics "
            f"WHERE run_id IN ({marks}) AND name = ? ORDER BY run_id, rowid", [*ids, name]
        ).fetchall()

    def live_progress(self, run_id: int) -> dict[str, Any]:
        """For a run still writing: the phase of its latest metric row and the best and last
        val/acc of that phase so far (empty when nothing is written yet)."""
        # two index seeks, however many rows the run has written
        row = self.db.execute("SELECT current_phase FROM runs WHERE id = ?", [run_id]).fetchone()
        phase = row[0] if row else None
        if not phase:  # a run that has not started a phase (or from before m002)
            latest = self.db.execute(
                "SELECT phase FROM metrics WHERE run_id = ? AND name = 'val/acc' "
                "ORDER BY rowid DESC LIMIT 1", [run_id]).fetchone()
            if latest is None:
                return {}
            phase = latest[0]
        values = [v for (v,) in self.db.execute(
            "SELECT value FROM metrics WHERE run_id = ? AND name = 'val/acc' AND phase = ? "
            "ORDER BY rowid", [run_id, phase])]
        out: dict[str, Any] = {"phase": phase}
        if values:
            out |= {"best_val_acc": max(values), "last_val_acc": values[-1]}
        return out

    def latest_export_meta(self, run_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The meta of each run's most recent `export` artifact (holds measured latency)."""
        ids = [int(i) for i in run_ids]
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        out: dict[int, dict[str, Any]] = {}
        for run_id, meta in self.db.execute(
            f"SELECT run_id, meta FROM artifacts WHERE kind = 'export' AND run_id IN ({marks}) "
            "ORDER BY id", ids):
            out[run_id] = json.loads(meta or "{}")
        return out


def _json_or(text: Any, default: Any) -> Any:
    """The JSON value of a column, or `default` when it is empty, not JSON or of another
    type (a row edited by hand must not keep the history from opening)."""
    if not text:
        return default
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return default
    return value if isinstance(value, type(default)) else default


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("config", "env", "summary"):
        row[key] = _json_or(row.get(key), {})
    row["plan"] = _json_or(row.get("plan"), [])
    row["tags"] = _decode_tags(row.get("tags"))
    return row


def _is_history_relative(path: Any, root_name: str) -> bool:
    """Is this a stored path relative to the history's folder (`<stem>-artifacts/...`)?"""
    return (isinstance(path, str) and not Path(path).is_absolute()
            and Path(path).parts[:1] == (root_name,))


def _decode_tags(text: Any) -> list[str]:
    """A run's tags: a JSON list of strings; plain text from a hand edit is one tag."""
    tags = _json_or(text, [text] if isinstance(text, str) and text.strip() else [])
    return [str(tag) for tag in tags]
