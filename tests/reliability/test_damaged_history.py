"""A damaged history (pages overwritten, random bytes, not a KD Studio file) is reported
with its path and never written into; `kdstudio check` reports, `--repair` copies every
readable row into a new file and leaves the original as it was."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from kdstudio.core.engine import run
from kdstudio.core.store import Store
from tests.helpers import tiny_config
from tests.reliability.conftest import assert_no_traceback, run_cli

RUNS = 3


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_state(folder: Path) -> dict[str, str]:
    return {p.name: sha256(p) for p in folder.iterdir() if p.is_file()}


def query(db: Path, sql: str, *params: object) -> list[tuple]:
    """Rows of a query on a closed file, read without creating -wal or -shm."""
    conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def readable_rows(db: Path) -> list[tuple]:
    """The metric rows of a damaged file that can be read one by one."""
    conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    rows = []
    try:
        high = query(db, "SELECT max(rowid) FROM metrics")[0][0]
        for rowid in range(1, high + 1):
            with contextlib.suppress(sqlite3.DatabaseError):
                rows += conn.execute("SELECT rowid, * FROM metrics WHERE rowid = ?",
                                     [rowid]).fetchall()
    finally:
        conn.close()
    return rows


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A history written by real runs (closed: every commit in the main file)."""
    db = tmp_path_factory.mktemp("pristine") / "h.db"
    with Store(db) as store:
        for index in range(RUNS):
            config = tiny_config()
            config.name = f"run-{index + 1}"
            config.seed = index
            assert run(config, store).status == "completed"
    return db


@pytest.fixture
def damaged(pristine: Path, tmp_path: Path) -> tuple[Path, int, int]:
    """A copy with two leaf pages of the metrics table (rows of run 2 among them)
    overwritten; returns the file, the metric rows it had and how many lay on those pages."""
    db = tmp_path / "history" / "h.db"
    db.parent.mkdir()
    shutil.copy(pristine, db)
    shutil.copytree(pristine.parent / "h-artifacts", db.parent / "h-artifacts")
    total = query(db, "SELECT count(*) FROM metrics")[0][0]
    leaves = query(db, "SELECT pageno, ncell FROM dbstat WHERE name = 'metrics' "
                       "AND pagetype = 'leaf' ORDER BY path")
    # leaf pages in rowid order: two in the middle (neither the first nor the last)
    inside = leaves[1:-1]
    chosen = inside[len(inside) // 2 - 1: len(inside) // 2 + 1]
    page_size = query(db, "PRAGMA page_size")[0][0]
    with db.open("r+b") as handle:  # no Store has the file open
        for page, _cells in chosen:
            handle.seek((page - 1) * page_size)
            handle.write(b"\xa5" * page_size)
    return db, total, sum(cells for _page, cells in chosen)


def test_damaged_pages_fail_quick_check_and_run_leaves_the_file_unchanged(
        damaged: tuple[Path, int, int]) -> None:
    db, _total, lost = damaged
    assert lost > 0
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        query(db, "PRAGMA quick_check")
    before = folder_state(db.parent)
    done = run_cli("run", "--preset", "synthetic-quick", "--db", db)
    assert done.returncode == 2, done.stdout + done.stderr
    assert_no_traceback(done)
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"kdstudio: --db {db}: the history is damaged: SQLite's page "
                           "check found")
    assert "kdstudio check --repair" in line
    assert folder_state(db.parent) == before  # byte for byte, and no -wal / -shm left


def test_read_commands_report_damage_in_one_line(damaged: tuple[Path, int, int],
                                                 tmp_path: Path) -> None:
    db, _total, _lost = damaged
    before = folder_state(db.parent)
    listed = run_cli("runs", "--db", db)  # the runs table is whole: it still lists them
    assert listed.returncode == 0
    assert [f"run-{i}" in listed.stdout for i in range(1, RUNS + 1)] == [True] * RUNS
    for args in (["export-metrics", "2", "--out", tmp_path / "m.csv"],
                 ["export", "2", "--out", tmp_path / "out"]):
        done = run_cli(*args, "--db", db)
        assert done.returncode == 2, done.stdout + done.stderr
        assert_no_traceback(done)
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"kdstudio: --db {db}: the history is damaged")
    assert not (tmp_path / "out").exists()
    assert folder_state(db.parent) == before


def test_check_reports_damage_and_repair_copies_every_readable_row(
        damaged: tuple[Path, int, int]) -> None:
    db, total, lost = damaged
    original = sha256(db)
    done = run_cli("check", "--db", db)
    assert done.returncode == 1
    assert f"History:         {db}" in done.stdout
    assert "Quick check:     " in done.stdout and "problem(s)" in done.stdout
    assert "Result:          DAMAGED" in done.stdout
    repaired_run = run_cli("check", "--db", db, "--repair")
    assert repaired_run.returncode == 1  # the original is still damaged
    assert_no_traceback(repaired_run)
    (copy,) = db.parent.glob("h.repaired-*.db")
    assert f"Repaired copy:   {copy}" in repaired_run.stdout
    assert f"Metric rows:     {total - lost:,} recovered" in repaired_run.stdout
    assert sha256(db) == original
    assert sorted(p.name for p in db.parent.iterdir()) == sorted(
        ["h.db", "h-artifacts", copy.name])
    assert query(copy, "PRAGMA integrity_check") == [("ok",)]
    assert query(copy, "SELECT id, name, status FROM runs ORDER BY id") == query(
        db, "SELECT id, name, status FROM runs ORDER BY id")
    assert query(copy, "SELECT count(*) FROM metrics")[0][0] == total - lost
    assert query(copy, "SELECT rowid, * FROM metrics ORDER BY rowid") == readable_rows(db)
    assert query(copy, "SELECT count(*) FROM artifacts") == query(
        db, "SELECT count(*) FROM artifacts")
    with Store(copy) as store:  # a normal history: migrations applied, artifacts found
        assert {r["status"] for r in store.list_runs()} == {"completed"}
        (student,) = store.artifacts(1, "student")
        assert Path(student["path"]).is_file()
    assert query(copy, "PRAGMA quick_check") == [("ok",)]


@pytest.mark.parametrize("content", ["random", "other-sqlite"])
def test_a_file_that_is_not_a_history_is_named_and_never_written(
        tmp_path: Path, content: str) -> None:
    db = tmp_path / "h.db"
    if content == "random":
        db.write_bytes(bytes(range(256)) * 64)
        problem = "not a KD Studio history: the file is not an SQLite database"
    else:
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.commit()
        conn.close()
        problem = "an SQLite database but not a KD Studio history (its tables: invoices)"
    before = folder_state(tmp_path)
    for args in (["runs"], ["show", "1"], ["export-metrics", "1", "--out", tmp_path / "m.csv"],
                 ["run", "--preset", "synthetic-quick"]):
        done = run_cli(*args, "--db", db)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.splitlines() == [f"kdstudio: --db {db}: {problem}"]
    check = run_cli("check", "--db", db, "--repair")
    assert check.returncode == 1
    assert_no_traceback(check)
    assert folder_state(tmp_path) == before


def test_check_on_a_sound_history_reports_its_counts_and_exits_0(pristine: Path,
                                                                  tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    shutil.copy(pristine, db)
    rows = query(db, "SELECT count(*) FROM metrics")[0][0]
    done = run_cli("check", "--db", db)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert f"History:         {db}" in lines
    assert f"Size:            {db.stat().st_size:,} bytes" in lines
    assert "Write-ahead log: none (every commit is in the main file)" in lines
    assert f"Runs:            {RUNS}" in lines and f"Metric rows:     {rows:,}" in lines
    assert lines[-1] == "Result:          ok"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.db"]
