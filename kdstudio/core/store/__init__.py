"""Run history in one SQLite file (sqlite-utils): runs, metrics, log lines and artifacts.

The only place that writes SQL. One `Store` per thread: a file connection is bound to the
thread that opened it. The parts:

- `errors`: what can go wrong with a history file, in the user's words;
- `files`: the file as files (read-only probe, file identity, keeping a stale `-wal` out);
- `rows`: how values are stored in rows (times, JSON columns, tags, digests);
- `schema`: the schema as migrations, m001 onwards;
- `connection`: opening, closing and the write guard (`check_writable`), artifact paths;
- `writes`: buffered writes of runs in progress, `try_flush`, the disk reserve and the one
  transaction helper every write goes through;
- `runs`: a run's life (create, update, finish, reopen, delete) and its export rows;
- `queries`: every read the CLI, the engine and the views make;
- `check`: `kdstudio check [--repair]`, a report on a history file and a copy of its
  readable rows.
"""

from __future__ import annotations

from kdstudio.core.store.connection import BUSY_MS, PATIENT_SECONDS
from kdstudio.core.store.errors import (
    DiskFull,
    HistoryDamaged,
    HistoryError,
    HistoryLocked,
    HistoryMissing,
    HistoryWriteError,
)
from kdstudio.core.store.queries import HistoryQueries
from kdstudio.core.store.rows import iso_seconds, now_iso, sha256_of
from kdstudio.core.store.runs import STATUSES, RunRecords
from kdstudio.core.store.schema import migrations
from kdstudio.core.store.writes import (
    FLUSH_BUSY_MS,
    FLUSH_SECONDS,
    MAX_BUFFERED_ROWS,
    RESERVE_BYTES,
    RESERVE_NAME,
)

__all__ = [
    "BUSY_MS", "FLUSH_BUSY_MS", "FLUSH_SECONDS", "MAX_BUFFERED_ROWS", "PATIENT_SECONDS",
    "RESERVE_BYTES", "RESERVE_NAME", "STATUSES", "DiskFull", "HistoryDamaged", "HistoryError",
    "HistoryLocked", "HistoryMissing", "HistoryWriteError", "Store", "iso_seconds",
    "migrations", "now_iso", "sha256_of",
]


class Store(RunRecords, HistoryQueries):
    """The history database. Opening it applies migrations and marks dead runs interrupted.

    `create=False` (the read commands) opens only an existing history and creates nothing:
    a missing folder or file raises HistoryMissing. A file that is not a KD Studio history
    raises HistoryDamaged, as does one whose pages fail SQLite's quick_check before the
    first write (with `create=True`, before anything is opened for writing).
    """
