"""Test set-up: Qt without a screen, caches and history in temporary folders."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never touch the user's history, cache or Qt settings from a test."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("KDSTUDIO_CACHE", str(base / "cache"))
    monkeypatch.setenv("KDSTUDIO_DB", str(base / "default-history.db"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
