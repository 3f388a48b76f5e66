"""The history file as files: a read-only health probe, file identity
for the write guard, and keeping a stale write-ahead log out of the file on close.

Nothing here opens the database file except through SQLite: closing any descriptor of it
in this process would drop every SQLite lock the process holds on it.
"""

from __future__ import annotations

import ctypes
import os
import sqlite3
import sys
import urllib.parse
from pathlib import Path

from kdstudio.core.store.errors import HistoryDamaged

KD_TABLES = {"runs", "metrics", "artifacts"}
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB (primary result codes)
_SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE = 1006
_KEPT_OPEN: list[object] = []  # connections that must never be closed (see keep_wal_out)
KEPT_OPEN_FILES: set[tuple[int, int]] = set()  # their files: not to be opened again here


def wal_path(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def shm_path(path: Path) -> Path:
    return path.with_name(path.name + "-shm")


def file_id(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a path, None when nothing is there; a stat, never an open."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def is_damage_error(error: BaseException) -> bool:
    """Is this SQLite's 'database disk image is malformed' or 'file is not a database'?"""
    if not isinstance(error, sqlite3.DatabaseError):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES
    text = str(error)
    return "malformed" in text or "not a database" in text


def read_only_uri(path: Path) -> str:
    """A URI that reads the file without writing or creating anything beside it.

    Without a `-wal` nobody has the file open in WAL mode, and `immutable=1` reads it with
    no `-wal`/`-shm` created (plain `mode=ro` would leave both behind). With a `-wal`,
    `mode=ro` reads the committed state including it.
    """
    absolute = urllib.parse.quote(os.path.abspath(path))
    mode = "mode=ro" if wal_path(path).exists() else "immutable=1"
    return f"file:{absolute}?{mode}"


def connect_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(read_only_uri(path), uri=True, check_same_thread=False)


def damage_message(error: BaseException) -> str:
    if "not a database" in str(error):
        return "not a KD Studio history: the file is not an SQLite database"
    return (f"the history is damaged (SQLite: {error}); `kdstudio check --repair` copies "
            "what is readable into a new file")


def probe(path: Path, pages: bool) -> None:
    """Raise HistoryDamaged unless `path` is an SQLite file holding a KD Studio history (or
    nothing yet); with `pages`, also run `PRAGMA quick_check`. Reads only."""
    try:
        conn = connect_read_only(path)
    except sqlite3.Error as error:
        raise HistoryDamaged(path, f"cannot open the file ({error})") from None
    try:
        tables = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and not tables & KD_TABLES:
            raise HistoryDamaged(path, "an SQLite database but not a KD Studio history "
                                       f"(its tables: {', '.join(sorted(tables)[:5])})")
        if pages:
            problems = quick_check(conn)
            if problems:
                raise HistoryDamaged(path, pages_message(problems))
    except sqlite3.DatabaseError as error:
        if is_damage_error(error):
            raise HistoryDamaged(path, damage_message(error)) from None
        raise HistoryDamaged(path, f"cannot read the file ({error})") from None
    finally:
        conn.close()


def quick_check(conn: sqlite3.Connection) -> list[str]:
    """The problems `PRAGMA quick_check` finds (empty when the pages are sound)."""
    try:
        rows = [row[0] for row in conn.execute("PRAGMA quick_check(20)")]
    except sqlite3.DatabaseError as error:
        if not is_damage_error(error):
            raise
        return [str(error)]  # damage that stops the check itself
    return [] if rows == ["ok"] else rows


def pages_message(problems: list[str]) -> str:
    return (f"the history is damaged: SQLite's page check found {len(problems)} "
            f"problem(s), first: {problems[0]}; `kdstudio check --repair` copies what is "
            "readable into a new file")


# ---------------------------------------------------------------- closing without a checkpoint


def keep_wal_out(conn: sqlite3.Connection, db_file: Path,
                 identity: tuple[int, int] | None = None) -> str:
    """Make closing `conn` leave the database file alone: no checkpoint of its (stale)
    write-ahead log into the file, no deleting a `-wal` that may now be another's.

    Returns how: "setconfig" (Python >= 3.12), "db_config" (SQLite's C call through
    ctypes, on the verified handle) or "kept open" (the connection is never closed in this
    process; the OS drops it at exit, which checkpoints nothing).
    """
    setconfig = getattr(conn, "setconfig", None)
    if setconfig is not None:
        setconfig(sqlite3.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, True)  # type: ignore[attr-defined]
        return "setconfig"
    try:
        if _db_config_no_checkpoint(conn, db_file):
            return "db_config"
    except (OSError, AttributeError, ValueError):
        pass
    _KEPT_OPEN.append(conn)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(conn))  # never deallocated, never closed
    if identity is not None:  # SQLite would share the stale log with a new connection
        KEPT_OPEN_FILES.add(identity)
    return "kept open"


def _sqlite_library() -> ctypes.CDLL:
    import _sqlite3  # the extension module: its handle finds the libsqlite3 it links

    library = ctypes.CDLL(_sqlite3.__file__)
    library.sqlite3_db_filename.restype = ctypes.c_char_p
    library.sqlite3_db_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return library


def _db_config_no_checkpoint(conn: sqlite3.Connection, db_file: Path) -> bool:
    """sqlite3_db_config(db, NO_CKPT_ON_CLOSE, 1) on the connection's handle, when the
    handle can be found and verified (CPython 3.10/3.11 keep `sqlite3 *db` first after the
    object header); False when it cannot be done safely."""
    if sys.implementation.name != "cpython" or sys.version_info[:2] not in ((3, 10), (3, 11)):
        return False
    handle = ctypes.c_void_p.from_address(id(conn) + object.__basicsize__).value
    if not handle:
        return False
    library = _sqlite_library()
    expected = conn.execute("PRAGMA database_list").fetchone()[2]
    named = library.sqlite3_db_filename(handle, b"main")
    if named is None or os.fsdecode(named) != expected or not expected:
        return False
    if os.path.realpath(expected) != os.path.realpath(db_file):
        return False
    state = ctypes.c_int(-1)
    rc = library.sqlite3_db_config(ctypes.c_void_p(handle),
                                   ctypes.c_int(_SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE),
                                   ctypes.c_int(1), ctypes.byref(state))
    return rc == 0 and state.value == 1
