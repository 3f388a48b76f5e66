"""The window process: no display means one line and exit 2 (not Qt's abort), and Ctrl-C,
SIGTERM or SIGHUP close it cleanly: a running run ends `stopped` with what it trained kept,
no traceback, exit status 128 + the signal's number."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdstudio.gui.lifecycle import missing_display
from tests.helpers import tiny_config
from tests.reliability.conftest import cli_env

WAIT_S = 90


def _window_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return cli_env(XDG_CONFIG_HOME=str(tmp_path / "config"), **extra)


@pytest.mark.parametrize("platform_variable", [None, "xcb", "wayland;xcb"])
def test_no_display_is_one_line_and_exit_2(tmp_path: Path, platform_variable: str | None):
    env = _window_env(tmp_path, KDSTUDIO_DB=str(tmp_path / "h.db"))
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    if platform_variable is not None:
        env["QT_QPA_PLATFORM"] = platform_variable
    done = subprocess.run([sys.executable, "-m", "kdstudio"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.returncode, done.stderr)  # not -6 (Qt's abort)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("kdstudio: no display to open the window on")
    assert "kdstudio run CONFIG.toml" in lines[0] and "QT_QPA_PLATFORM=offscreen" in lines[0]
    assert done.stdout == ""
    assert not (tmp_path / "h.db").exists()  # nothing opened before the check


def test_missing_display_rules() -> None:
    assert missing_display({}, "linux") is not None
    assert missing_display({"QT_QPA_PLATFORM": "xcb:nograb"}, "linux") is not None
    assert missing_display({"DISPLAY": ":0"}, "linux") is None
    assert missing_display({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert missing_display({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert missing_display({"QT_QPA_PLATFORM": "vnc"}, "linux") is None
    assert missing_display({}, "darwin") is None
    assert missing_display({}, "win32") is None


def _wait_for(path: Path, word: str, process: subprocess.Popen[str]) -> list[str]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if path.exists():
            lines = [line for line in path.read_text().splitlines() if line.startswith(word)]
            if lines:
                return lines[0].split()
        if process.poll() is not None:
            raise AssertionError(f"the window exited early: {process.communicate()}")
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"no {word!r} in {path} after {WAIT_S} s: {process.communicate()}")


def _finish(process: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
    """The process's output once it has exited; killed (and the test failed) if it hangs."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()
        raise AssertionError(f"the window did not exit within {timeout} s: {output}") from None


def _start_window(tmp_path: Path, config: Path | None) -> tuple[subprocess.Popen[str], Path]:
    probe = tmp_path / "probe.txt"
    extra = {"KDSTUDIO_STARTUP_PROBE": str(probe)}
    if config is not None:
        extra["KDSTUDIO_START_CONFIG"] = str(config)
    process = subprocess.Popen(
        [sys.executable, "-m", "kdstudio", "gui", "--db", str(tmp_path / "h.db")],
        env=_window_env(tmp_path, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    return process, probe


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_mid_run_stops_the_run_and_closes(tmp_path: Path, number: int) -> None:
    config = tiny_config()
    config.name = "long"
    config.teacher.epochs = config.optim.epochs = 3000  # far longer than the test waits
    config_file = tmp_path / "long.toml"
    config_file.write_text(config.to_toml(), encoding="utf-8")
    process, probe = _start_window(tmp_path, config_file)
    run_id = int(_wait_for(probe, "training", process)[1])
    time.sleep(0.5)  # a few more steps
    sent = time.monotonic()
    os.kill(process.pid, number)
    stdout, stderr = _finish(process)
    assert time.monotonic() - sent < 10
    assert process.returncode == 128 + number, stderr
    assert "Traceback" not in stderr + stdout, stderr
    with sqlite3.connect(tmp_path / "h.db") as con:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        status, error = con.execute("SELECT status, error FROM runs WHERE id = ?",
                                    (run_id,)).fetchone()
        losses = con.execute("SELECT COUNT(*) FROM metrics WHERE run_id = ? AND "
                             "name = 'loss/total'", (run_id,)).fetchone()[0]
    assert (status, error) == ("stopped", None)
    assert losses >= 1  # what it trained before the signal is kept


def test_ctrl_c_while_the_engine_imports(tmp_path: Path) -> None:
    process, probe = _start_window(tmp_path, None)
    shown = _wait_for(probe, "shown", process)  # painted; torch imports in the background
    assert shown[2] == "torch=0"
    os.kill(process.pid, signal.SIGINT)
    stdout, stderr = _finish(process)
    assert process.returncode == 128 + signal.SIGINT, stderr
    assert "Traceback" not in stderr + stdout, stderr
    assert "ready" not in probe.read_text()
