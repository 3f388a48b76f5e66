"""Opening the run history for a command: which file (--db, $KDSTUDIO_DB or the default),
how its problems read (one line naming where the path came from), and run keys."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kdstudio.cli.exits import BadInput

MAX_RUN_ID = 2**63 - 1  # SQLite's largest INTEGER


def history_label(path: str | None) -> str:
    """Where the history path came from, for error lines: `--db PATH`, `$KDSTUDIO_DB=PATH`
    or, for the default location, the path alone."""
    if path is not None:
        return f"--db {path}"
    override = os.environ.get("KDSTUDIO_DB")
    if override:
        return f"$KDSTUDIO_DB={override}"
    from kdstudio.core.paths import default_db_path

    return str(default_db_path())


def history_path(path: str | None) -> Path:
    """The history file that --db PATH (or, without it, the default) names."""
    from kdstudio.core.paths import default_db_path

    return Path(path).expanduser() if path is not None else default_db_path()


def open_store(path: str | None, create: bool = False) -> Any:
    """The history for a command. Read commands (`create=False`) create nothing; `run`
    creates a new history file in an existing folder (and the default location's folder,
    which does not exist before the first run), never a folder named by --db or
    $KDSTUDIO_DB."""
    from kdstudio.core.store import HistoryError, Store

    label = history_label(path)
    explicit = path is not None or bool(os.environ.get("KDSTUDIO_DB"))
    target = history_path(path)
    if create and explicit and not target.parent.is_dir():
        folder = Path(os.path.abspath(target)).parent
        raise BadInput([f"{label}: the folder {folder} does not exist (create it first)"])
    try:
        return Store(target, create=create)
    except HistoryError as error:
        raise BadInput([f"{label}: {error.problem}"]) from None
    except Exception as error:  # noqa: BLE001 - any other open failure is a bad --db
        raise BadInput([f"{label}: cannot open the history ({type(error).__name__}: "
                        f"{error})"]) from None


@contextmanager
def reading(path: str | None, records: bool = False) -> Iterator[Any]:
    """An open history for a read command; damage met while reading becomes one line.
    `records`: the command also records rows (export), so the write check runs first."""
    import sqlite3

    from kdstudio.core.store.files import damage_message, is_damage_error

    store = open_store(path)
    label = history_label(path)
    try:
        with history_problems(label), store:
            if records:
                store.check_writable()
            yield store
    except sqlite3.DatabaseError as error:
        problem = (damage_message(error) if is_damage_error(error)
                   else f"cannot read the history ({error})")
        raise BadInput([f"{label}: {problem}"]) from None


@contextmanager
def history_problems(label: str) -> Iterator[None]:
    """A HistoryError inside becomes BadInput: one line, `label: problem`."""
    from kdstudio.core.store import HistoryError

    try:
        yield
    except HistoryError as error:
        raise BadInput([f"{label}: {error.problem}"]) from None


@contextmanager
def existing_history(path: str | None) -> Iterator[Any]:
    """The history when its file exists (validation checks a reused teacher's run against
    it), else None; creates nothing."""
    store = None
    if history_path(path).is_file():
        with contextlib.suppress(BadInput):
            store = open_store(path)
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def check_run_keys(keys: list[str]) -> None:
    """Raise BadInput for a run id that no history can hold (beyond SQLite's integers)."""
    for key in keys:
        text = str(key).strip()
        if not text.isdigit():
            continue
        try:
            number = int(text)
        except ValueError:  # a digit that is not 0-9, like '²'
            raise BadInput([f"no run {key!r}: a run id is a number written with 0-9"]) from None
        if number > MAX_RUN_ID:
            raise BadInput([f"no run '{key}': run ids go up to {MAX_RUN_ID}"])


def find_run(store: Any, key: str) -> dict[str, Any]:
    """The run `key` (id or name) names in `store`; BadInput when there is none."""
    found = store.find_run(key)
    if found is None:
        raise BadInput([f"no run '{key}' in {store.path}"])
    return found
