"""Run history in one SQLite file (sqlite-utils): runs, metrics, log lines and artifacts.

One `Store` per thread: a file connection is bound to the thread that opened it.

Every write goes through one transaction helper and its guard (`Store.check_writable`):
before the first write the file's pages are checked once per process, and before each one
the guard looks (by `os.stat`, never by opening) whether the database file or its `-wal` was
replaced or deleted under the open connection. On damage the Store refuses every later write
and closes without checkpointing its stale log.

Artifact paths are stored relative to the history file's folder (`stored_path`) and read back
through `artifact_file`, so a history and its `-artifacts` folder can move together.

Writes of a run in progress (metric rows, log lines, artifact rows, run-row updates such as
the current phase) are buffered and written together in one transaction, at most
`FLUSH_SECONDS` behind. Such a flush waits only `FLUSH_BUSY_MS` for another process's write
lock; when the lock is taken it keeps everything buffered and tries again at the next flush,
so a user's `sqlite3` shell holding a transaction delays the rows but never the training.
Starting and finishing a run wait up to `PATIENT_SECONDS` for the lock. A write that fails
for good (disk full, I/O error) raises `HistoryWriteError`, one line naming the file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
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
from collections.abc import Callable, Iterable, Iterator
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
FLUSH_BUSY_MS = 20  # how long a flush during a run waits for another process's write lock
BUSY_MS = 10_000  # how long any other write waits for it
PATIENT_SECONDS = 120.0  # how long creating and finishing a run wait for it
MAX_BUFFERED_ROWS = 200_000  # metric rows kept while locked out (~30 MB); then a flush waits
RESERVE_BYTES = 64 * 1024  # disk kept free during a run to record its end on a full disk
RESERVE_NAME = "disk-reserve.bin"
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
def m004_run_logs(db: sqlite_utils.Database) -> None:
    """Every log line a run emits, in order, with its time and level."""
    db["logs"].create(
        {"run_id": int, "seq": int, "wall_time": float, "level": str, "message": str},
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["logs"].create_index(["run_id", "seq"])


class HistoryWriteError(HistoryError):
    """A write to the history failed and was rolled back: nothing of it is in the file.
    The message is one line that names the file."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.problem = message


class DiskFull(HistoryWriteError):
    """The disk holding the history is full."""


class HistoryLocked(HistoryWriteError):
    """Another connection held the history's write lock longer than this write would wait."""


_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13


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


def _reads_own_writes(method: Callable[..., Any]) -> Callable[..., Any]:
    """A read of the store that first writes what this store has buffered, if the lock is
    free at once, so it sees its own writes (rows stay buffered when it is not)."""

    @functools.wraps(method)
    def read(self: Store, *args: Any, **kwargs: Any) -> Any:
        if self._buffer or self._artifact_buffer or self._run_updates or self._log_buffer:
            with contextlib.suppress(HistoryWriteError):
                self._write_buffers(FLUSH_BUSY_MS / 1000)
        return method(self, *args, **kwargs)

    return read


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
        self.patience_s = PATIENT_SECONDS
        self._buffer: list[tuple] = []  # metric rows
        self._log_buffer: list[tuple] = []  # (run_id, seq, wall_time, level, message)
        self._artifact_buffer: list[dict[str, Any]] = []
        self._run_updates: dict[int, dict[str, Any]] = {}
        self._live_runs: set[int] = set()  # runs created here and not finished
        self._log_seq: dict[int, int] = {}
        self._last_flush = time.monotonic()
        self.busy_flushes = 0  # flushes that found the lock taken and kept their rows
        self.max_buffered_rows = 0  # the most metric rows that waited at once
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
        self.db.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
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
            for run_id in list(self._live_runs):
                self._release_reserve(run_id)

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
            reason = f"{_count(lost, 'metric row')} and {_count(lines, 'log line')} were lost"
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

    @_reads_own_writes
    def get_run(self, run_id: int) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        return self._decode(rows[0]) if rows else None

    @_reads_own_writes
    def find_run(self, key: str | int) -> dict[str, Any] | None:
        """A run by id, or the newest run with that name."""
        text = str(key)
        if text.isdigit():
            return self.get_run(int(text))
        rows = list(self.db.query(
            "SELECT * FROM runs WHERE name = ? ORDER BY id DESC LIMIT 1", [text]))
        return self._decode(rows[0]) if rows else None

    @_reads_own_writes
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
        """Delete a run, its metric rows, log lines, artifact rows and files."""
        self.flush()

        def delete() -> None:
            for table in ("metrics", "logs", "artifacts"):
                self.db.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            self.db.execute("DELETE FROM runs WHERE id = ?", [run_id])

        self._transaction(delete, BUSY_MS / 1000, f"the deletion of run #{run_id}")
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
            self._flush_during_run()

    def add_log(self, run_id: int, level: str, message: str) -> None:
        """Buffer one log line of a run; it is written with the next batch of metric rows
        (this call never writes, so it cannot fail)."""
        seq = self._log_seq.get(run_id)
        if seq is None:  # continue after the lines already stored (a resumed run)
            try:
                row = self.db.execute("SELECT max(seq) FROM logs WHERE run_id = ?",
                                      [run_id]).fetchone()
            except sqlite3.Error:  # an unreadable file: the write will say so
                row = (0,)
            seq = row[0] or 0
        self._log_seq[run_id] = seq + 1
        self._log_buffer.append((run_id, seq + 1, time.time(), str(level), str(message)))

    def flush(self) -> None:
        """Write everything buffered now, waiting for another process's lock like any write.
        Raises HistoryWriteError (the rows stay buffered)."""
        self._write_buffers(BUSY_MS / 1000)

    def try_flush(self) -> bool:
        """Write everything buffered if the write lock is free within FLUSH_BUSY_MS; False
        (the rows stay buffered) when another process holds it."""
        try:
            self._write_buffers(FLUSH_BUSY_MS / 1000)
        except HistoryLocked:
            self.busy_flushes += 1
            return False
        return True

    def _flush_during_run(self) -> None:
        """Write the buffers if the write lock is free within FLUSH_BUSY_MS; otherwise keep
        them for the next flush (unless MAX_BUFFERED_ROWS are waiting: then wait for it)."""
        self.max_buffered_rows = max(self.max_buffered_rows, len(self._buffer))
        if len(self._buffer) >= MAX_BUFFERED_ROWS:
            self._write_buffers(self.patience_s)
        else:
            self.try_flush()
        self._last_flush = time.monotonic()

    def _write_buffers(self, wait_s: float) -> None:
        """Metric rows, log lines, artifact rows and run updates in one transaction."""
        if not (self._buffer or self._log_buffer or self._artifact_buffer or self._run_updates):
            self._last_flush = time.monotonic()
            return

        def write() -> None:
            conn = self.db.conn
            if self._buffer:
                conn.executemany(
                    "INSERT INTO metrics (run_id, phase, step, epoch, name, value, wall_time) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", self._buffer)
            if self._log_buffer:
                conn.executemany(
                    "INSERT INTO logs (run_id, seq, wall_time, level, message) "
                    "VALUES (?, ?, ?, ?, ?)", self._log_buffer)
            if self._artifact_buffer:
                self.db["artifacts"].insert_all(self._artifact_buffer)
            for run_id, fields in self._run_updates.items():
                self.db["runs"].update(run_id, fields)

        self._transaction(write, wait_s, "the run's metric rows")
        self._buffer.clear()
        self._log_buffer.clear()
        self._artifact_buffer.clear()
        self._run_updates.clear()
        self._last_flush = time.monotonic()

    def _drop_buffers(self, run_id: int, keep_run_row: bool) -> tuple[int, int]:
        """Forget the buffered rows (the run row's update too unless `keep_run_row`);
        returns how many metric rows and log lines were dropped."""
        lost = (len(self._buffer), len(self._log_buffer))
        self._buffer.clear()
        self._log_buffer.clear()
        self._artifact_buffer.clear()
        if keep_run_row:
            self._run_updates = {run_id: self._run_updates.get(run_id, {})}
        else:
            self._run_updates.clear()
        return lost

    def _reserve_space(self, run_id: int) -> None:
        """Take RESERVE_BYTES of disk in the run's artifact folder (beside the history):
        when the disk fills, freeing them leaves room to record the run's end. Best effort:
        a disk too full for it runs without."""
        path = self.artifact_dir(run_id) / RESERVE_NAME
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:
                try:
                    os.posix_fallocate(handle.fileno(), 0, RESERVE_BYTES)
                except (AttributeError, OSError):  # a filesystem without fallocate
                    handle.write(bytes(RESERVE_BYTES))
        except OSError:
            path.unlink(missing_ok=True)

    def _release_reserve(self, run_id: int) -> bool:
        """Free the run's reserved disk space (and the folders made for it if they are
        still empty); returns whether there was any."""
        folder = self.artifact_dir(run_id)
        try:
            (folder / RESERVE_NAME).unlink()
        except OSError:
            return False
        for empty in (folder, folder.parent):
            try:
                empty.rmdir()
            except OSError:  # holds the run's files (or other runs')
                break
        return True

    def _transaction(self, write: Callable[[], None], wait_s: float, what: str) -> None:
        """Run `write` in one IMMEDIATE transaction, waiting up to `wait_s` for another
        connection's write lock; on any failure nothing of it is kept and a
        HistoryWriteError says why. The write guard goes first: a damaged file or one whose
        `-wal` went stale under us raises HistoryDamaged and is never written."""
        conn = self.db.conn
        if conn.in_transaction:  # inside a caller's transaction: part of it
            write()
            return
        self.check_writable()
        conn.execute(f"PRAGMA busy_timeout = {max(int(wait_s * 1000), 0)}")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                write()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise
        except sqlite3.Error as error:
            if is_damage_error(error):
                self._refuse(f"SQLite found the file damaged while writing ({error})")
            raise self._write_error(error, what, wait_s) from None
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_MS}")

    def _write_error(self, error: sqlite3.Error, what: str, wait_s: float
                     ) -> HistoryWriteError:
        code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
        if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return HistoryLocked(
                f"the history {self.path} stayed locked by another process for {wait_s:g} s "
                f"(a sqlite3 shell or a program holding a write transaction): {what} not "
                "written")
        if code == _SQLITE_FULL:
            return DiskFull(f"disk full: cannot write {what} to the history {self.path} "
                            f"({error})")
        return HistoryWriteError(f"cannot write {what} to the history {self.path}: {error}")

    @_reads_own_writes
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

    @_reads_own_writes
    def logs(self, run_id: int) -> list[dict[str, Any]]:
        """A run's stored log lines in the order it emitted them: seq, wall_time (seconds
        since the epoch), level, message."""
        return list(self.db.query(
            "SELECT seq, wall_time, level, message FROM logs WHERE run_id = ? ORDER BY seq",
            [run_id]))

    # ------------------------------------------------------------ artifacts

    def add_artifact(
        self, run_id: int, kind: str, path: Path, fmt: str, meta: dict[str, Any] | None = None
    ) -> int | None:
        """Record a file of a run; returns the row's id, or None for a run in progress in
        this store (the row is buffered with its metric rows)."""
        row = {"run_id": run_id, "kind": kind, "path": self.stored_path(path), "format": fmt,
               "sha256": sha256_of(Path(path)), "created_at": now_iso(),
               "meta": json.dumps(meta or {})}
        if run_id in self._live_runs:
            self.check_writable()
            self._artifact_buffer.append(row)
            return None
        ids: list[int] = []
        self._transaction(lambda: ids.append(self.db["artifacts"].insert(row).last_pk),
                          BUSY_MS / 1000, f"the {kind} file of run #{run_id}")
        return ids[0]

    @_reads_own_writes
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

    # ------------------------------------------------------------ read-only queries for views

    @_reads_own_writes
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

    @_reads_own_writes
    def history_signature(self) -> tuple[Any, ...]:
        """A cheap fingerprint of the runs table: it changes when a run is added, removed or
        finished, so a view can poll it and reload only on change."""
        row = self.db.execute(
            "SELECT count(*), coalesce(max(id), 0), coalesce(sum(status = 'running'), 0), "
            "coalesce(max(finished_at), ''), coalesce(sum(id * length(status)), 0) FROM runs"
        ).fetchone()
        return tuple(row)

    @_reads_own_writes
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

    @_reads_own_writes
    def runs_by_id(self, run_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Runs in the order of `run_ids`; unknown ids are skipped."""
        ids = [int(i) for i in run_ids]
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        found = {row["id"]: self._decode(row)
                 for row in self.db.query(f"SELECT * FROM runs WHERE id IN ({marks})", ids)}
        return [found[i] for i in ids if i in found]

    @_reads_own_writes
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

    @_reads_own_writes
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

    @_reads_own_writes
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

    @_reads_own_writes
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


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


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
