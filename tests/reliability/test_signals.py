"""Signals: Ctrl-C, SIGTERM and SIGHUP at any moment of `kdstudio run` end without a traceback;
during the run they stop it (`stopped`, everything so far kept) and the exit code is 128 + N.

Moments are found from the outside: a shared library the child has mapped (/proc/PID/maps)
says how far its start-up has come; an epoch line on its stdout says the run is going.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdstudio.core.config import save_toml
from kdstudio.core.store import Store
from tests.helpers import tiny_config
from tests.reliability.conftest import cli_env

LONG_RUN = ["--set", "teacher.epochs=300", "--set", "optim.epochs=300"]


def start_run(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    config = tmp_path / "cfg.toml"
    save_toml(tiny_config(), config)
    db = tmp_path / "h.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "kdstudio", "run", str(config), "--db", str(db), *LONG_RUN],
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, db


def wait_for_library(process: subprocess.Popen[str], fragment: str, timeout: float = 60) -> None:
    """Until the child has mapped a shared library whose path holds `fragment`."""
    deadline = time.monotonic() + timeout
    maps = Path(f"/proc/{process.pid}/maps")
    while time.monotonic() < deadline:
        try:
            if fragment in maps.read_text():
                return
        except OSError:
            pass
        assert process.poll() is None, "the child ended before the moment came"
        time.sleep(0.002)
    raise AssertionError(f"{fragment} never mapped")


def wait_for_epoch_line(process: subprocess.Popen[str]) -> list[str]:
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "epoch" in line:
            return lines
    raise AssertionError("the run printed no epoch line: " + "".join(lines))


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def assert_quiet(out: str, err: str) -> None:
    assert "Traceback" not in out + err, err
    assert len(err.strip().splitlines()) <= 1, err


def runs_of(db: Path) -> list[dict]:
    if not db.exists():
        return []
    with Store(db) as store:
        return store.list_runs()


@pytest.mark.parametrize("moment", ["command line loaded", "torch importing", "0.3 s", "0.6 s",
                                    "1.0 s"])
def test_ctrl_c_before_the_run_ends_at_once(tmp_path: Path, moment: str) -> None:
    process, db = start_run(tmp_path)
    if moment == "command line loaded":
        wait_for_library(process, "unicodedata")  # kdstudio.cli's first import that maps one
    elif moment == "torch importing":
        wait_for_library(process, "libtorch")
    else:
        time.sleep(float(moment.split()[0]))
    process.send_signal(signal.SIGINT)
    code, out, err = finish(process)
    assert code == 130, err
    assert_quiet(out, err)
    assert [r["status"] for r in runs_of(db)] in ([], ["stopped"])  # 1 s may reach the run


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stop_signal_during_the_run_keeps_everything(tmp_path: Path, signum: int) -> None:
    process, db = start_run(tmp_path)
    printed = wait_for_epoch_line(process)
    process.send_signal(signum)
    code, out, err = finish(process)
    assert code == 128 + signum, err
    assert_quiet(out, err)
    assert "stopped" in out  # the summary of the stopped run is printed
    (run,) = runs_of(db)
    assert run["status"] == "stopped"
    with Store(db) as store:
        # the epoch already printed is in the history, with the rows of every step before it
        epochs = store.metrics(run["id"], name="val/acc", phase="teacher")
        steps = store.metrics(run["id"], name="loss/total", phase="teacher")
    assert len(epochs) >= sum("epoch" in line for line in printed) >= 1
    assert len(steps) >= 5 * len(epochs)  # 144 training examples in batches of 32


def test_second_ctrl_c_ends_at_once_without_traceback(tmp_path: Path) -> None:
    process, db = start_run(tmp_path)
    wait_for_epoch_line(process)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    code, out, err = finish(process)
    assert code == 130, err
    assert_quiet(out, err)
    (run,) = runs_of(db)
    assert run["status"] in ("stopped", "interrupted")  # never left `running`
    with Store(db) as store:
        assert store.metrics(run["id"], name="val/acc", phase="teacher")


def test_sigterm_before_the_run_ends_with_one_line(tmp_path: Path) -> None:
    process, db = start_run(tmp_path)
    wait_for_library(process, "libtorch")
    process.send_signal(signal.SIGTERM)
    code, out, err = finish(process)
    assert code == 143, err
    assert_quiet(out, err)
    assert err.strip() in ("", "kdstudio: SIGTERM: stopped before the run started; nothing saved")
    assert runs_of(db) == []
