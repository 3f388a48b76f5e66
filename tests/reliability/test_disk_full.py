"""Disk full while a run writes metrics or weights, on a real small filesystem.

Each case runs `kdstudio run` in a user and mount namespace (`unshare -rm`) where a tiny
tmpfs is mounted over the history's folder or its artifacts folder, then reads the history
from outside: the run is `failed` with "disk full" as its reason, stderr is one line, the
file passes `PRAGMA integrity_check` and the rows written before the fault are kept.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import tiny_config
from tests.reliability.conftest import assert_no_traceback, cli_env


def _namespace_problem(folder: Path) -> str | None:
    """Why a tmpfs cannot be mounted in a user+mount namespace here (None: it can)."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    folder.mkdir()
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c",
         f"mount -t tmpfs -o size=4k tmpfs {shlex.quote(str(folder))}"],
        capture_output=True, text=True, timeout=30)
    folder.rmdir()
    if probe.returncode != 0:
        return f"cannot mount a tmpfs in a user namespace: {probe.stderr.strip()}"
    return None


@pytest.fixture
def namespace(tmp_path: Path) -> None:
    problem = _namespace_problem(tmp_path / "probe")
    if problem:
        pytest.skip(problem)


def _in_namespace(script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def _run_command(config: Path, db: Path) -> str:
    return " ".join(shlex.quote(part) for part in
                    [sys.executable, "-m", "kdstudio", "run", str(config), "--db", str(db),
                     "--quiet"])


def _history(db: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(db)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return connection


def _assert_one_line_disk_full(process: subprocess.CompletedProcess[str]) -> str:
    assert_no_traceback(process)
    lines = process.stderr.splitlines()
    assert len(lines) == 1, process.stderr
    assert "disk full" in lines[0] or "No space left on device" in lines[0]
    return lines[0]


def test_disk_full_while_writing_metrics_fails_the_run_and_keeps_what_was_written(
        tmp_path: Path, namespace: None) -> None:
    config = tiny_config()
    config.teacher.epochs = 1000  # metric rows enough to fill the disk within the teacher phase
    (tmp_path / "run.toml").write_text(config.to_toml(), encoding="utf-8")
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    db = disk / "h.db"
    # 1 MiB of disk, 512 KiB of it free: room for the history's first rows, not for all
    script = (f"mount -t tmpfs -o size=1m tmpfs {disk} && "
              f"dd if=/dev/zero of={disk}/filler bs=1k count=512 2>/dev/null && "
              f"{_run_command(tmp_path / 'run.toml', db)}; rc=$?; "
              # the history as the run left it, copied out before the namespace's disk goes
              f"cp {db} {out}/ && {{ cp {db}-wal {out}/ 2>/dev/null; exit $rc; }}")
    process = _in_namespace(script)
    assert process.returncode == 1, process.stderr
    line = _assert_one_line_disk_full(process)
    history = _history(out / "h.db")
    status, error = history.execute("SELECT status, error FROM runs").fetchone()
    assert status == "failed" and error.startswith("disk full") and error in line
    # the rows that waited when the disk filled are written if the run's reserve of disk
    # holds them, else counted as lost
    assert re.fullmatch(r"disk full: cannot write the run's metric rows to the history "
                        rf"{re.escape(str(db))} \(database or disk is full\)"
                        r"(; [\d,]+ metric rows? and [\d,]+ log lines? were lost)?", error), error
    steps = [step for (step,) in history.execute(
        "SELECT step FROM metrics WHERE phase = 'teacher' AND name = 'loss/total' "
        "ORDER BY rowid")]
    assert steps  # the batches written before the disk filled are all there
    assert steps == list(range(1, len(steps) + 1))
    assert steps[-1] < 1000 * 5  # and the disk did fill during the teacher phase


def test_disk_full_while_writing_weights_fails_the_run_with_the_os_message(
        tmp_path: Path, namespace: None) -> None:
    config = tiny_config()
    config.teacher.params = {"hidden_sizes": [512]}  # 18 kB of weights: more than the disk
    (tmp_path / "run.toml").write_text(config.to_toml(), encoding="utf-8")
    db = tmp_path / "h.db"
    artifacts = tmp_path / "h-artifacts"
    artifacts.mkdir()
    script = (f"mount -t tmpfs -o size=4k tmpfs {artifacts} && "
              f"{_run_command(tmp_path / 'run.toml', db)}")
    process = _in_namespace(script)
    assert process.returncode == 1, process.stderr
    line = _assert_one_line_disk_full(process)
    assert "No space left on device" in line
    history = _history(db)
    run_id, status, error = history.execute("SELECT id, status, error FROM runs").fetchone()
    assert status == "failed" and error.startswith("disk full") and error in line
    epochs = [epoch for (epoch,) in history.execute(
        "SELECT epoch FROM metrics WHERE phase = 'teacher' AND name = 'val/acc'")]
    assert epochs == [1, 2]  # the teacher trained and every one of its rows is kept
    assert history.execute("SELECT count(*) FROM artifacts").fetchone()[0] == 0
    level, message = history.execute(
        "SELECT level, message FROM logs WHERE run_id = ? ORDER BY seq DESC LIMIT 1",
        [run_id]).fetchone()
    assert (level, message) == ("error", error)
