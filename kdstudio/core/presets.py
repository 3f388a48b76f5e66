"""Ready-made configs shipped in resources/presets/*.toml."""

from __future__ import annotations

from typing import Any

from kdstudio.core.config import read_toml
from kdstudio.core.paths import presets_dir


def list_presets() -> list[str]:
    folder = presets_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def preset_description(name: str) -> str:
    """The first comment line of a preset file."""
    for line in (presets_dir() / f"{name}.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def load_preset(name: str) -> dict[str, Any]:
    """The preset as a dict; raises ValueError naming the presets that exist."""
    if name not in list_presets():
        raise ValueError(f"unknown preset '{name}' (choose from: {', '.join(list_presets())})")
    return read_toml(presets_dir() / f"{name}.toml")
