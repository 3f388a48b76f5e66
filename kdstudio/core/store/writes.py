"""Buffered writes and the one transaction helper every write goes through.

Writes of a run in progress (metric rows, log lines, artifact rows, run-row updates such as
the current phase) are buffered and written together in one transaction, at most
`FLUSH_SECONDS` behind. Such a flush waits only `FLUSH_BUSY_MS` for another process's write
lock; when the lock is taken it keeps everything buffered and tries again at the next flush,
so a user's `sqlite3` shell holding a transaction delays the rows but never the training.
A write that fails for good (disk full, I/O error) raises `HistoryWriteError`, one line
naming the file. A run in progress keeps `RESERVE_BYTES` of disk beside the history, freed
to record its end when the disk fills.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kdstudio.core.store.connection import BUSY_MS, HistoryConnection
from kdstudio.core.store.errors import (
    DiskFull,
    HistoryDamaged,
    HistoryLocked,
    HistoryWriteError,
)
from kdstudio.core.store.files import is_damage_error
from kdstudio.core.store.rows import now_iso, sha256_of

FLUSH_SECONDS = 1.0  # as often as epoch-end checkpoints at most (which flush first)
FLUSH_BUSY_MS = 20  # how long a flush during a run waits for another process's write lock
MAX_BUFFERED_ROWS = 200_000  # metric rows kept while locked out (~30 MB); then a flush waits
RESERVE_BYTES = 64 * 1024  # disk kept free during a run to record its end on a full disk
RESERVE_NAME = "disk-reserve.bin"

_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13


class BufferedWrites(HistoryConnection):
    """The buffers of runs in progress, their flushes, their disk reserves, and
    `_transaction`, through which every write of the history goes."""

    def __init__(self, path: str | Path | None = None, *, create: bool = True) -> None:
        self._buffer: list[tuple] = []  # metric rows
        self._log_buffer: list[tuple] = []  # (run_id, seq, wall_time, level, message)
        self._artifact_buffer: list[dict[str, Any]] = []
        self._run_updates: dict[int, dict[str, Any]] = {}
        self._live_runs: set[int] = set()  # runs created here and not finished
        self._log_seq: dict[int, int] = {}
        self._last_flush = time.monotonic()
        self.busy_flushes = 0  # flushes that found the lock taken and kept their rows
        self.max_buffered_rows = 0  # the most metric rows that waited at once
        super().__init__(path, create=create)

    def _before_close(self) -> None:
        if self._damage is None:
            with contextlib.suppress(HistoryDamaged):
                self.flush()

    def _after_close(self) -> None:
        for run_id in list(self._live_runs):
            self._release_reserve(run_id)

    @property
    def has_buffered(self) -> bool:
        """Is anything waiting to be written?"""
        return bool(self._buffer or self._artifact_buffer or self._run_updates
                    or self._log_buffer)

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

