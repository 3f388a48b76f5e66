"""What can go wrong with a history file, in the user's words."""

from __future__ import annotations

from pathlib import Path


class HistoryError(Exception):
    """A history file that cannot be used; `problem` says why in the user's words."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class HistoryMissing(HistoryError):
    """The history file or its folder does not exist (and was not to be created)."""


class HistoryDamaged(HistoryError):
    """The file is not an SQLite database, its pages are damaged, or it lost its
    write-ahead log while open: nothing more is written into it."""


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
