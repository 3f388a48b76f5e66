"""The write guard: a Store whose `-wal` is deleted or replaced under it (the lock-drop case,
reproduced for real), or whose pages turn out damaged, stops writing, says so in our words,
and closes without overwriting the file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kdstudio.core import store as store_module
from kdstudio.core.store import HistoryDamaged, Store
from kdstudio.core.store import files as history_files
from kdstudio.core.store.files import wal_path

WRITE_ROWS = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
for i in range(int(sys.argv[3])):
    conn.execute("INSERT INTO runs (name, created_at, status, config) "
                 "VALUES (?, '2026-01-01', 'completed', '{}')", [f"{sys.argv[2]}-{i}"])
conn.commit()
conn.close()
"""

HOLD_OPEN = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1])
conn.execute("PRAGMA journal_mode=wal")
conn.execute("SELECT count(*) FROM runs").fetchone()
print("open", flush=True)
sys.stdin.readline()
conn.close()
"""


def other_process_writes(db: Path, name: str, rows: int = 1) -> None:
    """Another program with plain sqlite3: open, write, close (the last one out
    checkpoints and deletes -wal and -shm)."""
    subprocess.run([sys.executable, "-c", WRITE_ROWS, str(db), name, str(rows)], check=True,
                   timeout=60)


def drop_our_locks(db: Path) -> None:
    """What a file dialog did: open and close a descriptor of the database file, which drops
    every POSIX lock this process holds on it."""
    os.close(os.open(db, os.O_RDONLY))


def written_history(tmp_path: Path) -> tuple[Store, int]:
    store = Store(tmp_path / "h.db")
    run_id = store.create_run({"name": "mine"})
    store.add_metric_rows([(run_id, "student", step, 1, "loss", 1.0 / step, 0.0)
                           for step in range(1, 51)])
    store.flush()
    return store, run_id


def plain_read(db: Path, sql: str) -> list[tuple]:
    """The rows of a query, read by another process with plain sqlite3 (raises
    sqlite3.DatabaseError with SQLite's message when it fails there)."""
    code = ("import json, sqlite3, sys\n"
            "try:\n"
            " rows = sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchall()\n"
            "except sqlite3.DatabaseError as error:\n"
            " sys.exit(f'error: {error}')\n"
            "print(json.dumps(rows))")
    done = subprocess.run([sys.executable, "-c", code, str(db), sql], capture_output=True,
                          text=True, timeout=60)
    if done.returncode:
        raise sqlite3.DatabaseError(done.stderr.strip())
    return [tuple(row) for row in json.loads(done.stdout)]


def test_a_wal_deleted_under_the_store_stops_every_write(tmp_path: Path) -> None:
    store, run_id = written_history(tmp_path)
    db = store.file
    drop_our_locks(db)
    other_process_writes(db, "other")
    assert not wal_path(db).exists()  # the other process took the history for unused
    store.add_metric_rows([(run_id, "student", 51, 1, "loss", 0.02, 0.0)])
    with pytest.raises(HistoryDamaged) as caught:
        store.flush()
    message = str(caught.value)
    assert str(db) in message and "h.db-wal was deleted by another program" in message
    assert "nothing more is written" in message
    for write in (lambda: store.update_run(run_id, notes="x"),
                  lambda: store.create_run({"name": "later"}),
                  lambda: store.finish_run(run_id, "failed", "x")):
        with pytest.raises(HistoryDamaged, match="h.db-wal was deleted"):
            write()
    store.close()
    assert store.damage is not None
    assert plain_read(db, "PRAGMA integrity_check") == [("ok",)]
    assert plain_read(db, "SELECT count(*) FROM metrics") == [(50,)]  # all committed rows
    assert plain_read(db, "SELECT name FROM runs ORDER BY id") == [("mine",), ("other-0",)]
    assert plain_read(db, "SELECT status FROM runs WHERE id = 1") == [("running",)]


def test_a_replaced_wal_is_found_and_the_file_stays_whole(tmp_path: Path) -> None:
    store, run_id = written_history(tmp_path)
    db = store.file
    drop_our_locks(db)
    other_process_writes(db, "other")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(db)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"  # a new -wal, a new file
        assert wal_path(db).exists()
        with pytest.raises(HistoryDamaged, match="h.db-wal was replaced by another program"):
            store.update_run(run_id, notes="after")
        store.close()
    finally:
        holder.communicate("\n", timeout=60)
    assert plain_read(db, "PRAGMA integrity_check") == [("ok",)]
    assert plain_read(db, "SELECT count(*), max(step) FROM metrics") == [(50, 50)]
    assert plain_read(db, "SELECT notes FROM runs WHERE id = 1") == [("",)]


@pytest.mark.parametrize("way", ["native", "kept open"])
def test_closing_after_the_fault_never_checkpoints_the_stale_log(
        tmp_path: Path, monkeypatch, way: str) -> None:
    """A write that raced the guard went into the deleted log; others wrote since. Closing
    must not copy that stale log over their pages (what plain sqlite3 does, see the
    control below). "kept open" is the fallback where SQLite's setting cannot be reached."""
    if way == "kept open":
        monkeypatch.setattr(history_files, "_db_config_no_checkpoint", lambda *_: False)
        monkeypatch.delattr(sqlite3.Connection, "setconfig", raising=False)
    store, run_id = written_history(tmp_path)
    db = store.file
    drop_our_locks(db)
    other_process_writes(db, "first")
    for step in range(51, 251):  # past the guard, as a write between its look and commit
        store.db.execute("INSERT INTO metrics (run_id, phase, step, epoch, name, value, "
                         "wall_time) VALUES (?, 'student', ?, 1, 'loss', 0.1, 0)",
                         [run_id, step])
    store.db.conn.commit()
    other_process_writes(db, "second", rows=300)
    with pytest.raises(HistoryDamaged):
        store.update_run(run_id, notes="x")
    store.close()
    expected = {"native": {"setconfig", "db_config"}, "kept open": {"kept open"}}[way]
    assert store.checkpoint_guard in expected
    if way == "kept open":  # its stale log must not be shared with a new connection here
        with pytest.raises(HistoryDamaged, match="restart KD Studio"):
            Store(db)
    assert plain_read(db, "PRAGMA integrity_check") == [("ok",)]
    assert plain_read(db, "SELECT count(*) FROM runs WHERE name LIKE 'second-%'") == [(300,)]
    assert plain_read(db, "SELECT count(*) FROM metrics") == [(50,)]


def test_control_plain_close_of_a_stale_log_overwrites_other_writes(tmp_path: Path) -> None:
    """The hazard the guard's close avoids is real: the same steps with a plain connection
    lose the other process's rows on close."""
    db = tmp_path / "h.db"
    with Store(db):
        pass
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("INSERT INTO runs (name, created_at, status, config) "
                 "VALUES ('mine', 'x', 'running', '{}')")
    drop_our_locks(db)
    other_process_writes(db, "first")
    for _ in range(200):
        conn.execute("INSERT INTO metrics (run_id, name, value) VALUES (1, 'loss', 0.1)")
    other_process_writes(db, "second", rows=300)
    conn.close()
    try:
        kept = plain_read(db, "SELECT count(*) FROM runs WHERE name LIKE 'second-%'")
    except sqlite3.DatabaseError:
        kept = None  # damaged outright
    assert kept != [(300,)]


def test_damaged_pages_met_while_writing_refuse_later_writes(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    # the window's Store: it checked the pages, so Stores opened while it is open do not
    first = Store(db)
    run_id = first.create_run({"name": "mine"})
    first.add_metric_rows([(run_id, "student", step, 1, "loss", 0.5, 0.0)
                           for step in range(1, 2001)])
    first.flush()
    first.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
    pages = plain_read(db, "SELECT pageno FROM dbstat WHERE name IN "
                           "('metrics', 'idx_metrics_run_id_name_phase')")
    page_size = plain_read(db, "PRAGMA page_size")[0][0]
    garbage = subprocess.run(  # another process overwrites those pages
        [sys.executable, "-c",
         "import sys\nf = open(sys.argv[1], 'r+b')\n"
         "for p in sys.argv[3:]:\n f.seek((int(p) - 1) * int(sys.argv[2]))\n"
         " f.write(b'\\xa5' * int(sys.argv[2]))\nf.close()",
         str(db), str(page_size), *[str(p) for (p,) in pages]], timeout=60)
    assert garbage.returncode == 0
    store = Store(db)
    store.add_metric_rows([(run_id, "student", 2001, 1, "loss", 0.5, 0.0)])
    with pytest.raises(HistoryDamaged, match="SQLite found the file damaged while writing"):
        store.flush()
    with pytest.raises(HistoryDamaged, match="damaged while writing"):
        store.update_run(run_id, notes="x")
    store.close()
    first.close()


def test_the_guard_costs_little_per_write(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    started = time.perf_counter()
    for _ in range(1000):
        store.check_writable()
    total_ms = (time.perf_counter() - started) * 1e3
    store.close()
    assert total_ms < 200  # two stat calls a write: microseconds, not milliseconds


def test_a_store_checks_the_pages_once_per_process(tmp_path: Path, monkeypatch) -> None:
    calls: list[int] = []
    real = store_module.files.quick_check
    monkeypatch.setattr(store_module.files, "quick_check",
                        lambda conn: calls.append(1) or real(conn))
    db = tmp_path / "h.db"
    with Store(db) as window:
        window.create_run({"name": "a"})
        for name in ("b", "c"):  # the worker thread's Store for each run
            with Store(db) as worker:
                worker.create_run({"name": name})
        assert len(calls) == 1
    with Store(db) as later:  # none open any more: the file is checked again
        later.create_run({"name": "d"})
    assert len(calls) == 2


def test_a_new_store_in_the_same_process_refuses_a_file_whose_wal_went_stale(
        tmp_path: Path) -> None:
    """SQLite shares one wal-index per file within a process: a Store opened beside the
    window's stale one must not join it; once the stale one is closed, opening is safe."""
    window, run_id = written_history(tmp_path)
    db = window.file
    drop_our_locks(db)
    other_process_writes(db, "other")
    with pytest.raises(HistoryDamaged, match="restart KD Studio to open it again"):
        Store(db)
    with pytest.raises(HistoryDamaged, match="was deleted"):
        window.update_run(run_id, notes="x")
    window.close()
    with Store(db) as fresh:
        assert [run["name"] for run in fresh.list_runs()] == ["other-0", "mine"]
        assert len(fresh.metrics(run_id)) == 50
        fresh.update_run(run_id, notes="written by a fresh connection")
    assert plain_read(db, "SELECT notes FROM runs WHERE id = 1") == [
        ("written by a fresh connection",)]


def test_a_worker_thread_store_also_refuses_a_file_gone_stale_under_the_window(
        tmp_path: Path) -> None:
    """The window's Store lives in the GUI thread; the run's Store opens in a worker."""
    window, _run_id = written_history(tmp_path)
    drop_our_locks(window.file)
    other_process_writes(window.file, "other")
    outcome: list[str] = []

    def worker() -> None:
        try:
            Store(window.file).close()
            outcome.append("opened")
        except HistoryDamaged as error:
            outcome.append(error.problem)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(60)
    window.close()
    assert len(outcome) == 1 and "restart KD Studio" in outcome[0]


def test_a_run_whose_wal_vanishes_ends_failed_with_the_reason_and_no_exception(
        tmp_path: Path) -> None:
    """Through the engine: the guard fails the run, the refusal is its reason (once), and
    the file keeps every row committed before the fault."""
    from kdstudio.core.engine import run
    from kdstudio.core.events import Epoch, Event
    from tests.helpers import tiny_config

    db = tmp_path / "h.db"
    store = Store(db)
    gone: list[int] = []

    def on_event(event: Event) -> None:
        if isinstance(event, Epoch) and not gone:
            store.flush()
            # what the other process does once our locks are gone: checkpoint, delete -wal
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            gone.append(plain_read(db, "SELECT count(*) FROM metrics")[0][0])
            os.rename(wal_path(db), tmp_path / "moved-wal")

    result = run(tiny_config(), store, on_event)
    store.close()
    assert result.status == "failed"
    assert result.error.count("h.db-wal was deleted") == 1
    assert result.error.endswith("the run's end was not recorded")
    assert store.damage is not None
    assert plain_read(db, "PRAGMA integrity_check") == [("ok",)]
    assert plain_read(db, "SELECT status FROM runs") == [("running",)]  # never written
    assert plain_read(db, "SELECT count(*) FROM metrics") == [(gone[0],)]  # all kept
    assert gone[0] > 0
