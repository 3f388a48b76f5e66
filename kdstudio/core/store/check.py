"""`kdstudio check`: an integrity report of a history file, and a repair that copies every
readable row into a new file beside it. The original is only ever read (read-only URI)."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from kdstudio.core.store.errors import HistoryMissing
from kdstudio.core.store.files import (
    KD_TABLES,
    connect_read_only,
    is_damage_error,
    shm_path,
    wal_path,
)

CHUNK_ROWS = 2000
COPIED_TABLES = ("runs", "metrics", "artifacts", "logs")  # parents before children


@dataclass
class CheckReport:
    """What `kdstudio check` found."""

    path: Path
    size: int = 0
    wal_size: int | None = None  # None: no -wal
    shm: bool = False
    runs: int | None = None
    metric_rows: int | None = None
    artifacts: int | None = None
    quick_check: list[str] = field(default_factory=list)
    integrity_check: list[str] = field(default_factory=list)
    quick_ms: float = 0.0
    integrity_ms: float = 0.0
    problem: str | None = None  # a problem that kept the checks from running

    @property
    def ok(self) -> bool:
        return (self.problem is None and self.quick_check == ["ok"]
                and self.integrity_check == ["ok"])

    def lines(self) -> list[str]:
        if self.wal_size is None:
            wal = "none (every commit is in the main file)"
        else:
            wal = (f"{self.path.name}-wal, {self.wal_size:,} bytes"
                   + (" (commits not yet copied into the main file, or a program has the "
                      "history open)" if self.wal_size else "")
                   + (", with -shm" if self.shm else ""))
        out = [f"History:         {self.path}",
               f"Size:            {self.size:,} bytes",
               f"Write-ahead log: {wal}"]
        if self.problem:
            return out + [f"Problem:         {self.problem}", "Result:          DAMAGED"]
        out += [f"Runs:            {_count(self.runs)}",
                f"Metric rows:     {_count(self.metric_rows)}",
                f"Artifacts:       {_count(self.artifacts)}",
                f"Quick check:     {_result(self.quick_check)} ({self.quick_ms:.0f} ms)",
                f"Integrity check: {_result(self.integrity_check)} ({self.integrity_ms:.0f} ms)",
                "Result:          " + ("ok" if self.ok else
                                       "DAMAGED (`kdstudio check --repair` copies what is "
                                       "readable into a new file)")]
        return out


def _count(value: int | None) -> str:
    return "unreadable" if value is None else f"{value:,}"


def _result(rows: list[str]) -> str:
    if rows == ["ok"]:
        return "ok"
    shown = "; ".join(rows[:3]) + ("; ..." if len(rows) > 3 else "")
    return f"{len(rows)} problem(s): {shown}"


def check_history(path: Path) -> CheckReport:
    """Report on the file at `path` without writing or creating anything."""
    path = Path(os.path.abspath(path))
    if not path.parent.is_dir():
        raise HistoryMissing(path, f"the folder {path.parent} does not exist")
    if not path.is_file():
        raise HistoryMissing(path, f"no history at {path}")
    report = CheckReport(path, size=path.stat().st_size, shm=shm_path(path).exists())
    wal = wal_path(path)
    report.wal_size = wal.stat().st_size if wal.exists() else None
    if report.size == 0:  # SQLite takes an empty file for a new, empty database
        report.runs = report.metric_rows = report.artifacts = 0
        report.quick_check = report.integrity_check = ["ok"]
        return report
    try:
        conn = connect_read_only(path)
    except sqlite3.Error as error:
        report.problem = f"cannot open the file ({error})"
        return report
    try:
        tables = {name for (name,) in conn.execute(  # reads the header: fails on a non-db
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and not tables & KD_TABLES:
            report.problem = ("an SQLite database but not a KD Studio history (its tables: "
                              f"{', '.join(sorted(tables)[:5])})")
            return report
        report.runs = _count_rows(conn, "runs")
        report.metric_rows = _count_rows(conn, "metrics")
        report.artifacts = _count_rows(conn, "artifacts")
        report.quick_check, report.quick_ms = _timed_check(conn, "quick_check")
        report.integrity_check, report.integrity_ms = _timed_check(conn, "integrity_check")
    except sqlite3.DatabaseError as error:
        report.problem = ("not an SQLite database file" if "not a database" in str(error)
                          else f"cannot read the file ({error})")
    finally:
        conn.close()
    return report


def _count_rows(conn: sqlite3.Connection, table: str) -> int | None:
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.DatabaseError as error:
        if is_damage_error(error) or "no such table" in str(error):
            return None
        raise


def _timed_check(conn: sqlite3.Connection, pragma: str) -> tuple[list[str], float]:
    started = time.perf_counter()
    try:
        rows = [row[0] for row in conn.execute(f"PRAGMA {pragma}(100)")]
    except sqlite3.DatabaseError as error:
        rows = [str(error)]
    return rows, (time.perf_counter() - started) * 1000


# ---------------------------------------------------------------- repair


@dataclass
class RepairReport:
    """What `kdstudio check --repair` copied, per table, and where to."""

    source: Path
    target: Path
    copied: dict[str, int] = field(default_factory=dict)
    unreadable_ranges: dict[str, int] = field(default_factory=dict)
    placeholder_runs: int = 0

    def lines(self) -> list[str]:
        out = [f"Repaired copy:   {self.target}"]
        for table, count in self.copied.items():
            detail = ""
            if self.unreadable_ranges.get(table):
                detail = f" ({self.unreadable_ranges[table]:,} unreadable row(s) lost)"
            label = {"runs": "Runs", "metrics": "Metric rows", "artifacts": "Artifacts",
                     "logs": "Log lines"}[table]
            out.append(f"{label + ':':<17}{count:,} recovered{detail}")
        if self.placeholder_runs:
            out.append(f"{self.placeholder_runs} run row(s) were unreadable: their recovered "
                       "rows hang on placeholder runs named 'recovered run N'")
        out.append(f"The original {self.source} was not changed. Artifact files stay where "
                   "they are; to use the copy, rename it to the history's name.")
        return out


def repair_target(path: Path, now: dt.datetime | None = None) -> Path:
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.stem}.repaired-{stamp}{path.suffix or '.db'}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.stem}.repaired-{stamp}-{counter}{path.suffix or '.db'}")
    return target


def repair_history(path: Path) -> RepairReport:
    """Copy every readable row of the history at `path` into a new history beside it."""
    from kdstudio.core.store import Store

    path = Path(os.path.abspath(path))
    source = connect_read_only(path)
    try:
        tables = _readable_tables(source)
        if not tables & KD_TABLES:
            raise ValueError("the file holds no KD Studio tables: nothing to recover")
        target = repair_target(path)
        report = RepairReport(path, target)
        store = Store(target)
        try:
            run_ids: set[int] = set()
            for table in COPIED_TABLES:
                if table not in tables or table not in store.db.table_names():
                    continue
                columns = [c for c in _columns(source, table)
                           if c in store.db[table].columns_dict]
                if "id" not in columns:  # keep row order and numbers as they were
                    columns.insert(0, "rowid")
                _copy_table(source, store, table, columns, report, run_ids)
        finally:
            store.close()
    finally:
        source.close()
    return report


def _readable_tables(conn: sqlite3.Connection) -> set[str]:
    try:
        return {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise ValueError(f"the list of tables is unreadable ({error}): nothing can be "
                         "recovered with this tool") from None


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def _rowid_bounds(conn: sqlite3.Connection, table: str) -> tuple[int, int] | None:
    """The smallest and largest rowid, or None for an empty table. When the ends of the
    table are unreadable, a bound from the file size (no table holds more rows than that)."""
    try:
        low, high = conn.execute(f"SELECT min(rowid), max(rowid) FROM {table}").fetchone()
    except sqlite3.DatabaseError:
        page_count = conn.execute("PRAGMA page_count").fetchone()[0]
        return 1, max(page_count, 1) * 200
    return None if low is None else (low, high)


def _read_range(conn: sqlite3.Connection, table: str, columns: list[str], low: int,
                high: int, report: RepairReport) -> list[tuple]:
    """Rows with rowid in [low, high]; a range that fails is split until single rows, so
    a damaged page loses only the rows on it (a single row is read by `rowid =`: a range
    scan also reads one row past its end, which may lie on a damaged page)."""
    select = f"SELECT {', '.join(columns)} FROM {table} WHERE "
    try:
        if low == high:
            return conn.execute(select + "rowid = ?", [low]).fetchall()
        return conn.execute(select + "rowid BETWEEN ? AND ? ORDER BY rowid",
                            [low, high]).fetchall()
    except sqlite3.DatabaseError:
        if low == high:
            report.unreadable_ranges[table] = report.unreadable_ranges.get(table, 0) + 1
            return []
    middle = (low + high) // 2
    return (_read_range(conn, table, columns, low, middle, report)
            + _read_range(conn, table, columns, middle + 1, high, report))


def _copy_table(source: sqlite3.Connection, store, table: str, columns: list[str],
                report: RepairReport, run_ids: set[int]) -> None:
    bounds = _rowid_bounds(source, table)
    report.copied[table] = 0
    if bounds is None:
        return
    marks = ", ".join("?" * len(columns))
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    run_column = columns.index("run_id") if "run_id" in columns else None
    for low in range(bounds[0], bounds[1] + 1, CHUNK_ROWS):
        rows = _read_range(source, table, columns, low, min(low + CHUNK_ROWS - 1, bounds[1]),
                           report)
        if not rows:
            continue
        if table == "runs":
            run_ids.update(row[columns.index("id")] for row in rows)
        elif run_column is not None:
            for run_id in {row[run_column] for row in rows} - run_ids - {None}:
                _placeholder_run(store, run_id)
                run_ids.add(run_id)
                report.placeholder_runs += 1
        with store.writing(), store.db.atomic():
            store.db.conn.executemany(insert, rows)
        report.copied[table] += len(rows)


def _placeholder_run(store, run_id: int) -> None:
    """A run row for rows whose own run row was unreadable."""
    with store.writing(), store.db.atomic():
        store.db["runs"].insert({
            "id": run_id, "name": f"recovered run {run_id}", "status": "failed",
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "config": "{}", "error": "its run row was unreadable in the damaged history; "
                                     "the rows shown were recovered"})
