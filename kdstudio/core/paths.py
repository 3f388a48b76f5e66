"""Where KD Studio keeps its files: history database, artifacts, caches, presets."""

from __future__ import annotations

import os
import site
import sys
import sysconfig
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


SOURCE_PRESETS = Path(__file__).resolve().parents[2] / "resources" / "presets"


def preset_dirs() -> list[Path]:
    """Where presets may be, in order: resources/presets of a source checkout, then
    share/kdstudio/presets under the install's data folder (an environment or the system)
    and under the user's (`pip install --user`)."""
    roots = [Path(sys.prefix), Path(sysconfig.get_paths()["data"])]
    try:
        user_scheme = sysconfig.get_preferred_scheme("user")
        user_base = os.environ.get("PYTHONUSERBASE") or site.getuserbase()
        roots.append(Path(sysconfig.get_paths(scheme=user_scheme,
                                              vars={"userbase": user_base})["data"]))
    except (KeyError, ValueError):  # no user scheme on this platform
        pass
    found = [SOURCE_PRESETS] + [root / "share" / APP_NAME / "presets" for root in roots]
    return list(dict.fromkeys(found))


def presets_dir() -> Path:
    """The first folder of `preset_dirs()` that exists (the first candidate if none does)."""
    candidates = preset_dirs()
    return next((folder for folder in candidates if folder.is_dir()), candidates[0])
