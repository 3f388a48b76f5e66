"""Fault and bad-input tests: real processes, real files, real signals.

`kdstudio_cli(*args)` runs `python -m kdstudio ARGS` in a subprocess, as a user would, and
returns the finished process (text output, never raising on a non-zero exit).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

CLI_TIMEOUT = 120


def cli_env(**extra: str) -> dict[str, str]:
    """The environment a CLI subprocess gets: this one, headless, one thread."""
    env = dict(os.environ)
    env.update({"QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "1",
                "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def run_cli(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = CLI_TIMEOUT, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kdstudio", *map(str, args)], cwd=cwd,
                          env=env or cli_env(), capture_output=True, text=True,
                          timeout=timeout, input=stdin)


@pytest.fixture
def kdstudio_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_cli


def assert_no_traceback(process: subprocess.CompletedProcess[str]) -> None:
    """Neither stream holds a Python traceback."""
    for stream in (process.stdout, process.stderr):
        assert "Traceback" not in stream, stream
