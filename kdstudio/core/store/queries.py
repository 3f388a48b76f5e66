"""Reads of the history: runs, metric rows, log lines, artifacts, and the few aggregate
queries the views poll. Each read first writes what this Store has buffered when the lock
is free at once, so it sees its own writes."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

from kdstudio.core.store.errors import HistoryWriteError
from kdstudio.core.store.rows import decode_tags, json_or
from kdstudio.core.store.writes import FLUSH_BUSY_MS, BufferedWrites


def _reads_own_writes(method: Callable[..., Any]) -> Callable[..., Any]:
    """A read of the store that first writes what this store has buffered, if the lock is
    free at once, so it sees its own writes (rows stay buffered when it is not)."""

    @functools.wraps(method)
    def read(self: BufferedWrites, *args: Any, **kwargs: Any) -> Any:
        if self.has_buffered:
            with contextlib.suppress(HistoryWriteError):
                self._write_buffers(FLUSH_BUSY_MS / 1000)
        return method(self, *args, **kwargs)

    return read


class HistoryQueries(BufferedWrites):
    """Read-only queries, each a named method: nothing outside the store writes SQL."""

    @_reads_own_writes
    def get_run(self, run_id: int) -> dict[str, Any] | None:
        rows = list(self.db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
        return self._decode(rows[0]) if rows else None

    @_reads_own_writes
    def find_run(self, key: str | int) -> dict[str, Any] | None:
        """A run by id, or the newest run with that name."""
        text = str(key)
        if text.isdigit():
            return self.get_run(int(text))
        rows = list(self.db.query(
            "SELECT * FROM runs WHERE name = ? ORDER BY id DESC LIMIT 1", [text]))
        return self._decode(rows[0]) if rows else None

    @_reads_own_writes
    def list_runs(
        self, status: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM runs"
        params: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY id DESC"
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        return [self._decode(row) for row in self.db.query(sql, params)]

    @_reads_own_writes
    def runs_in_group(self, group_id: str) -> list[dict[str, Any]]:
        """The runs of one sweep (runs.group_id), oldest first."""
        rows = self.db.query("SELECT * FROM runs WHERE group_id = ? ORDER BY id", [group_id])
        return [self._decode(row) for row in rows]

    @_reads_own_writes
    def metrics(
        self, run_id: int, name: str | None = None, phase: str | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT phase, step, epoch, name, value, wall_time FROM metrics WHERE run_id = ?"
        params: list[Any] = [run_id]
        if name:
            sql += " AND name = ?"
            params.append(name)
        if phase:
            sql += " AND phase = ?"
            params.append(phase)
        return list(self.db.query(sql + " ORDER BY rowid", params))

    @_reads_own_writes
    def logs(self, run_id: int) -> list[dict[str, Any]]:
        """A run's stored log lines in the order it emitted them: seq, wall_time (seconds
        since the epoch), level, message."""
        return list(self.db.query(
            "SELECT seq, wall_time, level, message FROM logs WHERE run_id = ? ORDER BY seq",
            [run_id]))

    @_reads_own_writes
    def artifacts(self, run_id: int, kind: str | None = None) -> list[dict[str, Any]]:
        sql, params = "SELECT * FROM artifacts WHERE run_id = ?", [run_id]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        rows = list(self.db.query(sql + " ORDER BY id", params))
        for row in rows:
            row["meta"] = json.loads(row["meta"] or "{}")
            row["path"] = str(self.artifact_file(row["path"]))  # wherever the history now is
        return rows

    @_reads_own_writes
    def runs_with_artifact(self, kind: str, limit: int = 500) -> list[dict[str, Any]]:
        """Runs that have an artifact of `kind`, newest first, each with the path of its
        latest one as `artifact_path` (resolved): one query, not one per run."""
        sql = (
            "SELECT runs.*, latest.path AS artifact_path FROM runs JOIN ("
            " SELECT run_id, path, max(id) FROM artifacts WHERE kind = ? GROUP BY run_id"
            ") AS latest ON latest.run_id = runs.id ORDER BY runs.id DESC LIMIT ?")
        runs = [self._decode(row) for row in self.db.query(sql, [kind, limit])]
        for run in runs:
            run["artifact_path"] = str(self.artifact_file(run["artifact_path"]))
        return runs

    @_reads_own_writes
    def history_signature(self) -> tuple[Any, ...]:
        """A cheap fingerprint of the runs table: it changes when a run is added, removed or
        finished, so a view can poll it and reload only on change."""
        row = self.db.execute(
            "SELECT count(*), coalesce(max(id), 0), coalesce(sum(status = 'running'), 0), "
            "coalesce(max(finished_at), ''), coalesce(sum(id * length(status)), 0) FROM runs"
        ).fetchone()
        return tuple(row)

    @_reads_own_writes
    def list_runs_brief(self) -> list[dict[str, Any]]:
        """Every run, newest first, without the config, env and summary JSON (a table of
        all runs needs none of them; get_run has them); tags are decoded."""
        columns = [c for c in self.db["runs"].columns_dict if c not in ("config", "env",
                                                                        "summary")]
        rows = [dict(zip(columns, values, strict=True)) for values in
                self.db.execute(f"SELECT {', '.join(columns)} FROM runs ORDER BY id DESC")]
        # One JSON document for all tag lists: a thousand tiny json.loads calls cost more.
        try:
            tags = json.loads("[" + ",".join(row["tags"] or "[]" for row in rows) + "]")
        except ValueError:  # a row edited by hand: decode them one by one
            tags = [decode_tags(row["tags"]) for row in rows]
        for row, row_tags in zip(rows, tags, strict=True):
            row["tags"] = row_tags
        return rows

    @_reads_own_writes
    def run_configs(self, after_id: int = 0) -> dict[int, dict[str, Any]]:
        """The config of every run whose id is above `after_id` (a run's config does not
        change once written, so a view asks only for the new ones), by id."""
        rows = self.db.execute("SELECT id, config FROM runs WHERE id > ? ORDER BY id",
                               [after_id]).fetchall()
        try:  # one JSON document for all: thousands of json.loads calls cost more
            configs = json.loads("[" + ",".join(text or "{}" for _, text in rows) + "]")
        except ValueError:  # a row edited by hand: decode them one by one
            configs = [json_or(text, {}) for _, text in rows]
        return {run_id: config if isinstance(config, dict) else {}
                for (run_id, _), config in zip(rows, configs, strict=True)}

    @_reads_own_writes
    def group_run_ids(self, group_id: str) -> list[int]:
        """Ids of the runs of a sweep or group (runs.group_id), oldest first."""
        return [run_id for (run_id,) in self.db.execute(
            "SELECT id FROM runs WHERE group_id = ? ORDER BY id", [str(group_id)])]

    @_reads_own_writes
    def runs_by_id(self, run_ids: Iterable[int]) -> list[dict[str, Any]]:
        """Runs in the order of `run_ids`; unknown ids are skipped."""
        ids = [int(i) for i in run_ids]
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        found = {row["id"]: self._decode(row)
                 for row in self.db.query(f"SELECT * FROM runs WHERE id IN ({marks})", ids)}
        return [found[i] for i in ids if i in found]

    @_reads_own_writes
    def metric_names(self, run_ids: Iterable[int]) -> list[str]:
        """The metric names recorded for any of the runs, sorted."""
        names: set[str] = set()
        for run_id in {int(i) for i in run_ids}:
            # A loose index scan: one index seek per distinct name instead of reading every
            # row of the run (the (run_id, name, phase) index keeps names in order).
            rows = self.db.execute(
                "WITH RECURSIVE names(n) AS ("
                " SELECT (SELECT min(name) FROM metrics WHERE run_id = :run)"
                " UNION ALL"
                " SELECT (SELECT min(name) FROM metrics WHERE run_id = :run AND name > n)"
                " FROM names WHERE n IS NOT NULL)"
                " SELECT n FROM names WHERE n IS NOT NULL", {"run": run_id})
            names.update(name for (name,) in rows)
        return sorted(names)

    @_reads_own_writes
    def metric_rows(self, run_ids: Iterable[int], name: str) -> list[tuple[Any, ...]]:
        """(run_id, phase, step, epoch, value, wall_time) of one metric for many runs at once,
        in the order they were written within each run."""
        ids = [int(i) for i in run_ids]
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        return self.db.execute(
            f"SELECT run_id, phase, step, epoch, value, wall_time FROM metrics "
            f"WHERE run_id IN ({marks}) AND name = ? ORDER BY run_id, rowid", [*ids, name]
        ).fetchall()

    @_reads_own_writes
    def live_progress(self, run_id: int) -> dict[str, Any]:
        """For a run still writing: the phase of its latest metric row and the best and last
        val/acc of that phase so far (empty when nothing is written yet)."""
        # two index seeks, however many rows the run has written
        row = self.db.execute("SELECT current_phase FROM runs WHERE id = ?", [run_id]).fetchone()
        phase = row[0] if row else None
        if not phase:  # a run that has not started a phase (or from before m002)
            latest = self.db.execute(
                "SELECT phase FROM metrics WHERE run_id = ? AND name = 'val/acc' "
                "ORDER BY rowid DESC LIMIT 1", [run_id]).fetchone()
            if latest is None:
                return {}
            phase = latest[0]
        values = [v for (v,) in self.db.execute(
            "SELECT value FROM metrics WHERE run_id = ? AND name = 'val/acc' AND phase = ? "
            "ORDER BY rowid", [run_id, phase])]
        out: dict[str, Any] = {"phase": phase}
        if values:
            out |= {"best_val_acc": max(values), "last_val_acc": values[-1]}
        return out

    @_reads_own_writes
    def latest_export_meta(self, run_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The meta of each run's most recent `export` artifact (holds measured latency)."""
        ids = [int(i) for i in run_ids]
        if not ids:
            return {}
        marks = ", ".join("?" * len(ids))
        out: dict[int, dict[str, Any]] = {}
        for run_id, meta in self.db.execute(
            f"SELECT run_id, meta FROM artifacts WHERE kind = 'export' AND run_id IN ({marks}) "
            "ORDER BY id", ids):
            out[run_id] = json.loads(meta or "{}")
        return out

    @_reads_own_writes
    def table_counts(self) -> dict[str, int]:
        """How many rows each table holds: runs, metrics, logs, artifacts."""
        return {table: self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("runs", "metrics", "logs", "artifacts")}
