"""How values are stored in and read back from the history's rows: times, JSON columns,
tags, file digests."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any


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

def count_of(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def json_or(text: Any, default: Any) -> Any:
    """The JSON value of a column, or `default` when it is empty, not JSON or of another
    type (a row edited by hand must not keep the history from opening)."""
    if not text:
        return default
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return default
    return value if isinstance(value, type(default)) else default


def decode_run(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("config", "env", "summary"):
        row[key] = json_or(row.get(key), {})
    row["plan"] = json_or(row.get("plan"), [])
    row["tags"] = decode_tags(row.get("tags"))
    return row


def is_history_relative(path: Any, root_name: str) -> bool:
    """Is this a stored path relative to the history's folder (`<stem>-artifacts/...`)?"""
    return (isinstance(path, str) and not Path(path).is_absolute()
            and Path(path).parts[:1] == (root_name,))


def decode_tags(text: Any) -> list[str]:
    """A run's tags: a JSON list of strings; plain text from a hand edit is one tag."""
    tags = json_or(text, [text] if isinstance(text, str) and text.strip() else [])
    return [str(tag) for tag in tags]
