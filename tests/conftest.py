"""Test set-up: Qt without a screen, caches and history in temporary folders."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The tiny models of the tests gain nothing from more threads, and OpenMP threads that spin
# against another busy core (a GUI thread, a parallel job) can make a step 10x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_paths(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never touch the user's history, cache or Qt settings from a test."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("KDSTUDIO_CACHE", str(base / "cache"))
    monkeypatch.setenv("KDSTUDIO_DB", str(base / "default-history.db"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
