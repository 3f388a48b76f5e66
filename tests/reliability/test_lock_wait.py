"""Another process holding the history's write lock delays a run's writes, never the run.

A real `sqlite3` connection in another process takes the write lock (`BEGIN IMMEDIATE` or
`BEGIN EXCLUSIVE`) as soon as the run has its row and holds it for a few seconds, across the
run's phases; the run is a real `kdstudio run` subprocess.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdstudio.core.engine import run
from kdstudio.core.events import Event, Log, RunFinished, RunStarted
from kdstudio.core.store import FLUSH_BUSY_MS, Store
from tests.helpers import tiny_config
from tests.reliability.conftest import assert_no_traceback, cli_env

HOLD_SECONDS = 4.0
assert HOLD_SECONDS * 1000 > 10 * FLUSH_BUSY_MS  # far longer than a flush waits

# Waits for the history to have a run's first metric rows (training has begun), takes the
# write lock, holds it, prints the times.
LOCKER = """
import json, os, sqlite3, sys, time
path, table, mode, hold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
deadline = time.time() + 60
while not os.path.exists(path):  # never create the file: the run does
    time.sleep(0.005)
db = sqlite3.connect(path, timeout=30, isolation_level=None)
while time.time() < deadline:
    try:
        if db.execute("SELECT count(*) FROM " + table).fetchone()[0]:
            break
    except sqlite3.OperationalError:  # the schema is not written yet
        pass
    time.sleep(0.005)
db.execute("BEGIN " + mode)
db.execute("UPDATE runs SET notes = notes")  # hold a real write, as a user's shell would
start = time.time()
time.sleep(hold)
db.execute("COMMIT")
print(json.dumps({"start": start, "end": time.time()}))
"""


def _config():
    config = tiny_config()
    config.teacher.epochs = 100  # about 1.5 s of training on one core: inside the hold
    config.optim.epochs = 20
    return config


def _values(store: Store, run_id: int) -> list[tuple]:
    """Every metric row but the throughput ones (timed, so they differ between runs)."""
    return [(r["phase"], r["step"], r["epoch"], r["name"], r["value"])
            for r in store.metrics(run_id) if r["name"] != "samples_per_s"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[tuple], int]:
    """The metric rows and the number of log lines of the same run without a lock."""
    with Store(tmp_path_factory.mktemp("reference") / "h.db") as store:
        result = run(_config(), store)
        assert result.status == "completed"
        return _values(store, result.run_id), len(store.logs(result.run_id))


@pytest.mark.parametrize("mode", ["IMMEDIATE", "EXCLUSIVE"])
def test_a_run_goes_on_while_another_process_holds_the_write_lock(
        tmp_path: Path, reference: tuple[list[tuple], int], mode: str) -> None:
    (tmp_path / "run.toml").write_text(_config().to_toml(), encoding="utf-8")
    db = tmp_path / "h.db"
    env = cli_env()
    runner = subprocess.Popen(
        [sys.executable, "-m", "kdstudio", "run", str(tmp_path / "run.toml"), "--db", str(db),
         "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    locker = subprocess.run(
        [sys.executable, "-c", LOCKER, str(db), "metrics", mode, str(HOLD_SECONDS)],
        env=env, capture_output=True, text=True, timeout=120)
    out, err = runner.communicate(timeout=120)
    assert locker.returncode == 0, locker.stderr
    hold = json.loads(locker.stdout)
    finished = subprocess.CompletedProcess(runner.args, runner.returncode, out, err)
    assert_no_traceback(finished)
    assert runner.returncode == 0 and err == "", err
    with Store(db) as store:
        (row,) = store.list_runs()
        assert row["status"] == "completed" and row["error"] is None
        values, logs = _values(store, row["id"]), store.logs(row["id"])
        steps = [(r["phase"], r["wall_time"]) for r in store.metrics(row["id"], "loss/total")]
        files = [artifact["kind"] for artifact in store.artifacts(row["id"])]
    expected_values, expected_lines = reference
    assert values == expected_values  # nothing lost, nothing changed
    # every line of the run without the lock, plus one saying the checkpoints waited
    waited = [line for line in logs if "epoch checkpoints wait" in line["message"]]
    assert len(waited) == 1 and waited[0]["level"] == "warning"
    assert len(logs) == expected_lines + 1
    # training went on while the lock was held: steps kept starting during the hold, in
    # more than one phase (the current-phase change and the teacher's file row waited too)
    during = [phase for phase, when in steps if hold["start"] < when < hold["end"]]
    assert len(during) > 100, (len(during), len(steps))
    assert {"teacher", "baseline"} <= set(during)
    assert row["current_phase"] == "student"
    assert files == ["teacher", "baseline", "student"]


def _locked(db: Path) -> bool:
    """Whether another connection holds the write lock of `db`."""
    probe = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        probe.close()


def test_a_lock_held_longer_than_the_run_end_waits_fails_the_run_naming_the_lock(
        tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    events: list[Event] = []
    lockers: list[subprocess.Popen] = []

    def on_event(event: Event) -> None:
        events.append(event)
        if isinstance(event, RunStarted):  # the lock is taken once the run has its row
            lockers.append(subprocess.Popen(
                [sys.executable, "-c", LOCKER, str(db), "runs", "IMMEDIATE", "30"], env=cli_env(),
                stdout=subprocess.PIPE, text=True))
            deadline = time.monotonic() + 30
            while not _locked(db) and time.monotonic() < deadline:
                time.sleep(0.01)

    try:
        with Store(db) as store:
            store.patience_s = 0.5  # the run's end waits half a second, not two minutes
            result = run(tiny_config(), store, on_event)
    finally:
        for locker in lockers:
            locker.kill()
            locker.wait()
    assert result.status == "failed"
    assert "stayed locked by another process for 0.5 s" in result.error
    assert str(db) in result.error
    finished = events[-1]
    assert isinstance(finished, RunFinished) and finished.status == "failed"
    assert finished.error == result.error
    assert events[-2] == Log(result.run_id, "error", result.error)
