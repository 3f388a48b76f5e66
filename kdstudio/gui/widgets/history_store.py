"""The history a view reads: the window's one GUI-thread Store, or one of its own."""

from __future__ import annotations

from pathlib import Path

from kdstudio.core.store import Store

HistoryArg = str | Path | Store | None  # a Store to share, a history file, None: the default


def view_store(db: HistoryArg) -> Store:
    """The GUI thread's Store when given one (shared by the views), else a Store opened on
    the path (None: the default history file)."""
    return db if isinstance(db, Store) else Store(db)
