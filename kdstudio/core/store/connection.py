"""The history file's connection and its write guard.

One connection per Store, bound to the thread that opened it. Before the first write the
file's pages are checked once per process, and before each one the guard looks (by
`os.stat`, never by opening) whether the database file or its `-wal` was replaced or
deleted under the open connection. On damage the Store refuses every later write and
closes without checkpointing its stale log.

Artifact paths are stored relative to the history file's folder (`stored_path`) and read
back through `artifact_file`, so a history and its `-artifacts` folder can move together.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import sqlite_utils

from kdstudio.core.paths import default_db_path
from kdstudio.core.store import files as history_files
from kdstudio.core.store.errors import HistoryDamaged, HistoryMissing
from kdstudio.core.store.files import file_id, is_damage_error, wal_path
from kdstudio.core.store.rows import decode_run, is_history_relative
from kdstudio.core.store.schema import migrations

BUSY_MS = 10_000  # how long a write other than a flush waits for another process's lock
PATIENT_SECONDS = 120.0  # how long creating and finishing a run wait for it


def _open_stores(identity: tuple[int, int] | None) -> list[HistoryConnection]:
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


# The Stores of this process, to ask what the open ones know about a file: whether one
# checked its pages (while it is open the file cannot be swapped for another with the same
# inode number), and which `-wal` they found (SQLite shares one wal-index per file within a
# process, so a new connection to a file whose `-wal` changed under the open ones would
# inherit their stale index).
_STORES: weakref.WeakSet[HistoryConnection] = weakref.WeakSet()
_STORES_LOCK = threading.Lock()  # a GUI thread and its worker open Stores side by side
_RESTART = ("this history lost its write-ahead log while this process had it open; restart "
            "KD Studio to open it again")
class HistoryConnection:
    """The open history file: opening it checks the file and applies migrations; every
    write goes through `writing` (or `check_writable`) first.

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

    # ------------------------------------------------------------ lifecycle

    def _before_close(self) -> None:
        """What a Store does before its connection closes (write its buffers)."""

    def _after_close(self) -> None:
        """What a Store does once its connection is closed (free its disk reserves)."""

    def close(self) -> None:
        """Write what is buffered and close. A Store that found damage writes nothing more;
        one whose `-wal` or file was replaced under it closes without checkpointing its stale
        log into the file (`damage` says what it found)."""
        if self._closed:
            return
        try:
            self._before_close()
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
            self._after_close()

    checkpoint_guard = ""  # how a damaged Store kept its log out of the file on close

    @property
    def damage(self) -> str | None:
        """What the guard found wrong (None while the history is sound)."""
        return self._damage

    def __enter__(self) -> Self:
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
        if isinstance(teacher, dict) and is_history_relative(teacher.get("checkpoint"),
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
        if not is_history_relative(stored, self.artifacts_root.name):
            return config
        return {**config, "teacher": {**teacher, "checkpoint": stored}}

    def _decode(self, row: dict[str, Any]) -> dict[str, Any]:
        run = decode_run(row)
        run["config"] = self._resolve_teacher(run["config"])
        return run
