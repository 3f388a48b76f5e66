"""Where KD Studio keeps its files: history database, artifacts, caches, presets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from platformdirs import user_cache_dir, user_data_dir

APP_NAME = "kdstudio"


def default_db_path() -> Path:
    """`KDSTUDIO_DB` if set, else history.db in the platform's user data folder."""
    override = os.environ.get("KDSTUDIO_DB")
    if override:
        return Path(override).expanduser()
    return Path(user_data_dir(APP_NAME)) / "history.db"


def cache_dir() -> Path:
    override = os.environ.get("KDSTUDIO_CACHE")
    return Path(override).expanduser() if override else Path(user_cache_dir(APP_NAME))


def presets_dir() -> Path:
    """resources/presets in a source checkout; share/kdstudio/presets in an installed wheel."""
    source = Path(__file__).resolve().parents[2] / "resources" / "presets"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "kdstudio" / "presets"
