"""Store: schema by migrations, WAL, batched metrics, interrupted runs, deletion."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdstudio.core import store as store_module
from kdstudio.core.paths import default_db_path
from kdstudio.core.store import Store, schema
from kdstudio.core.store import writes as store_writes


def test_schema_wal_and_migrations(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        assert store.db.journal_mode == "wal"
        # NORMAL (1): commits during training cost no fsync
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert {"runs", "metrics", "artifacts"} <= set(store.db.table_names())
        applied = [m.name for m in store_module.migrations.applied(store.db)]
        assert applied[0] == "m001_initial"
    with Store(tmp_path / "h.db") as again:  # reopening applies nothing twice
        assert [m.name for m in store_module.migrations.applied(again.db)] == applied


def test_run_lifecycle_and_metrics(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        run_id = store.create_run({"name": "a", "seed": 1, "data": {"dataset": "digits"}})
        store.add_metrics(run_id, "student", 1, 1, {"loss/total": 0.5, "lr": 0.1})
        store.finish_run(run_id, "completed", student_test_acc=0.9, summary={"x": 1})
        run = store.get_run(run_id)
        assert run["status"] == "completed" and run["student_test_acc"] == 0.9
        assert run["summary"] == {"x": 1} and run["config"]["name"] == "a"
        assert run["dataset"] == "digits"
        rows = store.metrics(run_id, name="loss/total")
        assert [(r["phase"], r["step"], r["value"]) for r in rows] == [("student", 1, 0.5)]
        assert store.find_run("a")["id"] == run_id
        with pytest.raises(ValueError, match="unknown status"):
            store.finish_run(run_id, "great")


def test_metrics_are_buffered_but_never_more_than_a_flush_period_behind(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(store_writes, "FLUSH_SECONDS", 0.2)
    writer = Store(tmp_path / "h.db")
    reader = Store(tmp_path / "h.db")
    run_id = writer.create_run({"name": "a"})
    writer.add_metrics(run_id, "teacher", 1, 1, {"loss/total": 1.0})
    assert len(writer._buffer) == 1  # buffered, not yet written
    time.sleep(0.25)
    writer.add_metrics(run_id, "teacher", 2, 1, {"loss/total": 0.9})
    assert [r["step"] for r in reader.metrics(run_id)] == [1, 2]
    writer.close()
    reader.close()


def test_runs_of_a_dead_process_become_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    code = (
        "import sys; from kdstudio.core.store import Store;"
        f"s = Store({str(db)!r}); s.create_run({{'name': 'orphan'}}); s.db.close()"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with Store(db) as store:
        run = store.find_run("orphan")
        assert run["status"] == "interrupted"
        assert run["finished_at"]
        assert not store.artifact_dir(run["id"]).exists()  # its disk reserve is freed
        elsewhere = store.create_run({"name": "other machine"}, host="another-host", pid=1)
        assert store.mark_interrupted() == 0  # another machine's run is not judged here
        assert store.get_run(elsewhere)["status"] == "running"
        mine = store.create_run({"name": "alive"})
        assert store.mark_interrupted() == 0  # this process is alive: its run stays running
        assert store.get_run(mine)["status"] == "running"


def test_delete_removes_rows_and_files(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        run_id = store.create_run({"name": "a"})
        folder = store.artifact_dir(run_id)
        folder.mkdir(parents=True, exist_ok=True)  # a run in progress has its folder
        (folder / "student.safetensors").write_bytes(b"weights")
        store.add_artifact(run_id, "student", folder / "student.safetensors", "safetensors")
        store.add_metrics(run_id, "student", 1, 1, {"loss/total": 1.0})
        store.flush()
        assert store.artifacts(run_id)[0]["sha256"] == hashlib.sha256(b"weights").hexdigest()
        store.delete_run(run_id)
        assert store.get_run(run_id) is None
        assert store.metrics(run_id) == [] and store.artifacts(run_id) == []
        assert not folder.exists()


def test_default_path_honours_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KDSTUDIO_DB", str(tmp_path / "env.db"))
    assert default_db_path() == tmp_path / "env.db"
    monkeypatch.delenv("KDSTUDIO_DB")
    assert default_db_path().name == "history.db"
    assert "kdstudio" in str(default_db_path())


def test_pid_is_recorded(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        run = store.get_run(store.create_run({"name": "a"}))
        assert run["pid"] == os.getpid()


def test_rows_edited_by_hand_still_decode(tmp_path: Path) -> None:
    """Tags written as plain text, or broken JSON in a column, never keep the history shut."""
    with Store(tmp_path / "h.db") as store:
        good = store.create_run({"name": "a"}, name="a")
        plain = store.create_run({"name": "b"}, name="b")
        broken = store.create_run({"name": "c"}, name="c")
        store.update_run(good, tags=["x", "y"])
        store.db.execute("UPDATE runs SET tags = 'few-labels' WHERE id = ?", [plain])
        store.db.execute("UPDATE runs SET tags = '{oops', summary = '[1, 2]', config = 'nope' "
                         "WHERE id = ?", [broken])
        runs = {run["id"]: run for run in store.list_runs()}
        assert runs[good]["tags"] == ["x", "y"] and runs[good]["config"] == {"name": "a"}
        assert runs[plain]["tags"] == ["few-labels"]
        assert runs[broken]["tags"] == ["{oops"]
        assert runs[broken]["summary"] == {} and runs[broken]["config"] == {}
        brief = {run["id"]: run["tags"] for run in store.list_runs_brief()}
        assert brief == {good: ["x", "y"], plain: ["few-labels"], broken: ["{oops"]}


def test_live_progress_follows_the_current_phase(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        run_id = store.create_run({"name": "r"}, name="r")
        assert store.live_progress(run_id) == {}
        for epoch, acc in enumerate([0.5, 0.7, 0.6], start=1):
            store.add_metrics(run_id, "baseline", epoch * 10, epoch, {"val/acc": acc})
        store.flush()
        # rows written by a version without current_phase: the last val/acc row's phase
        assert store.live_progress(run_id) == {
            "phase": "baseline", "best_val_acc": 0.7, "last_val_acc": 0.6}
        store.update_run(run_id, current_phase="student")
        store.add_metrics(run_id, "student", 1, 1, {"loss/total": 2.0})
        store.flush()
        assert store.live_progress(run_id) == {"phase": "student"}  # no epoch ended yet
        store.add_metrics(run_id, "student", 10, 1, {"val/acc": 0.4})
        store.flush()
        assert store.live_progress(run_id) == {
            "phase": "student", "best_val_acc": 0.4, "last_val_acc": 0.4}


def test_runs_with_artifact_gives_each_runs_latest_file_in_one_query(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        ids = [store.create_run({"name": f"r{i}"}, name=f"r{i}") for i in range(4)]
        files = {}
        for run_id, count in zip(ids, [2, 0, 1, 3], strict=True):
            for k in range(count):
                path = tmp_path / f"t{run_id}-{k}.bin"
                path.write_bytes(bytes([k]))
                store.add_artifact(run_id, "teacher", path, "safetensors")
                files[run_id] = str(path)
            store.add_artifact(run_id, "student", tmp_path / f"t{run_id}-0.bin"
                               if count else _touch(tmp_path / "s.bin"), "safetensors")
        runs = store.runs_with_artifact("teacher")
        assert [run["id"] for run in runs] == [ids[3], ids[2], ids[0]]  # newest first
        assert {run["id"]: run["artifact_path"] for run in runs} == {
            ids[0]: files[ids[0]], ids[2]: files[ids[2]], ids[3]: files[ids[3]]}
        assert runs[0]["config"] == {"name": "r3"}  # decoded like get_run
        assert [run["id"] for run in store.runs_with_artifact("teacher", limit=2)] == [
            ids[3], ids[2]]


def _touch(path: Path) -> Path:
    path.write_bytes(b"x")
    return path


def test_run_logs_table_by_migration_and_deleted_with_the_run(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        assert "m004_run_logs" in [m.name for m in store_module.migrations.applied(store.db)]
        assert store.db["logs"].columns_dict == {
            "run_id": int, "seq": int, "wall_time": float, "level": str, "message": str}
        assert any(index.columns == ["run_id", "seq"] for index in store.db["logs"].indexes)
        run_id = store.create_run({"name": "a"})
        store.add_log(run_id, "info", "hello")
        store.finish_run(run_id, "completed")
        assert [line["message"] for line in store.logs(run_id)] == ["hello"]
        store.delete_run(run_id)
        assert store.logs(run_id) == []


def test_a_flush_during_a_run_keeps_its_rows_while_another_connection_holds_the_lock(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store_writes, "FLUSH_SECONDS", 0.0)  # every add tries to flush
    db = tmp_path / "h.db"
    with Store(db) as store:
        run_id = store.create_run({"name": "a"})
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        for step in range(1, 6):
            store.add_metrics(run_id, "student", step, 1, {"loss/total": 1.0 / step})
            store.add_log(run_id, "info", f"step {step}")
            store.update_run(run_id, current_phase="student")
        took = time.monotonic() - started
        assert store.busy_flushes == 5 and len(store._buffer) == 5
        assert took < 5 * 0.2  # each flush gave up after FLUSH_BUSY_MS, not 10 s
        other.execute("ROLLBACK")
        store.add_metrics(run_id, "student", 6, 1, {"loss/total": 0.1})
        assert store._buffer == [] and store.max_buffered_rows == 6
        reader = sqlite3.connect(db)
        assert [step for (step,) in reader.execute("SELECT step FROM metrics")] == [
            1, 2, 3, 4, 5, 6]
        assert reader.execute("SELECT count(*) FROM logs").fetchone()[0] == 5
        assert reader.execute("SELECT current_phase FROM runs").fetchone()[0] == "student"
        reader.close()
        other.close()


def test_a_run_in_progress_keeps_disk_in_reserve_until_it_ends(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        run_id = store.create_run({"name": "a"})
        reserve = store.artifact_dir(run_id) / store_module.RESERVE_NAME
        assert reserve.stat().st_size == store_module.RESERVE_BYTES
        assert store.finish_run(run_id, "completed") == ("completed", None)
        assert not reserve.exists()
        assert not store.artifact_dir(run_id).parent.exists()  # no empty folders left


def test_the_end_of_a_run_waits_for_the_lock_then_says_who_held_it(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with Store(db) as store:
        store.patience_s = 0.3
        run_id = store.create_run({"name": "a"})
        store.add_metrics(run_id, "student", 1, 1, {"loss/total": 1.0})
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        with pytest.raises(store_module.HistoryLocked, match="stayed locked by another "
                           r"process for 0.3 s .*: the run's metric rows not written"):
            store.finish_run(run_id, "completed")
        assert 0.3 <= time.monotonic() - started < 3
        other.execute("ROLLBACK")
        other.close()


def test_a_reopened_run_is_running_here_again_and_its_log_continues(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        run_id = store.create_run({"name": "a"})
        store.add_log(run_id, "info", "first")
        store.finish_run(run_id, "stopped")
    with Store(tmp_path / "h.db") as store:
        assert store.reopen_run(run_id, ["student"], 0)
        row = store.get_run(run_id)
        assert (row["status"], row["finished_at"], row["pid"]) == ("running", None, os.getpid())
        assert (store.artifact_dir(run_id) / store_module.RESERVE_NAME).exists()
        store.update_run(run_id, current_phase="baseline")  # buffered, as for a new run
        store.add_log(run_id, "info", "resumed")
        assert store._run_updates and store._log_buffer
        store.finish_run(run_id, "completed")
        assert [(line["seq"], line["message"]) for line in store.logs(run_id)] == [
            (1, "first"), (2, "resumed")]
        assert store.get_run(run_id)["current_phase"] == "baseline"


def test_artifact_paths_are_stored_relative_to_the_history_folder(tmp_path: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    with Store("data/h.db") as store:  # a relative path: stored paths never follow the cwd
        weights = store.artifact_dir(3) / "student.safetensors"
        assert weights == tmp_path / "data" / "h-artifacts" / "run-3" / "student.safetensors"
        assert store.stored_path(weights) == "h-artifacts/run-3/student.safetensors"
        assert store.stored_path(tmp_path / "out" / "m.onnx") == str(tmp_path / "out/m.onnx")
        assert store.stored_path("out/m.onnx") == str(tmp_path / "out" / "m.onnx")
        assert store.artifact_file("h-artifacts/run-3/student.safetensors") == weights
        assert store.artifact_file("/x/y.onnx") == Path("/x/y.onnx")


def test_a_read_only_open_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(store_module.HistoryMissing, match="the folder .* does not exist"):
        Store(tmp_path / "none" / "h.db", create=False)
    with pytest.raises(store_module.HistoryMissing, match="no history at"):
        Store(tmp_path / "h.db", create=False)
    assert list(tmp_path.iterdir()) == []
    with Store(tmp_path / "h.db") as store:
        store.create_run({"name": "a"})
    with Store(tmp_path / "h.db", create=False) as store:
        assert [run["name"] for run in store.list_runs()] == ["a"]


def test_m005_leaves_paths_outside_the_artifacts_folder_alone(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with Store(db) as store:
        run_id = store.create_run({"name": "a"})
        store.finish_run(run_id, "completed")  # its artifact rows are written at once
        outside = tmp_path / "exports" / "s.onnx"
        outside.parent.mkdir()
        outside.write_bytes(b"x")
        store.add_artifact(run_id, "export", outside, "onnx")
        store.db.execute("INSERT INTO artifacts (run_id, kind, path, format) VALUES "
                         "(?, 'student', ?, 'safetensors')",
                         [run_id, str(tmp_path / "h-artifacts" / "run-1" / "s.safetensors")])
        store.db.execute("INSERT INTO artifacts (run_id, kind, path, format) VALUES "
                         "(?, 'student', 'other-artifacts/run-1/s.safetensors', 'x')", [run_id])
        store.db.conn.commit()
        schema.m005_relative_artifact_paths(store.db)
        schema.m005_relative_artifact_paths(store.db)  # twice: nothing changes
        paths = [p for (p,) in store.db.execute("SELECT path FROM artifacts ORDER BY id")]
    assert paths == [str(outside), "h-artifacts/run-1/s.safetensors",
                     "other-artifacts/run-1/s.safetensors"]


def test_replace_artifacts_keeps_one_row_per_file_and_none_for_a_file_gone(
        tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    out = tmp_path / "out"
    out.mkdir()
    onnx, pt = out / "student.onnx", out / "student.pt"
    onnx.write_bytes(b"first")
    pt.write_bytes(b"pt")
    with Store(db) as store:
        run_id = store.create_run({"name": "a"})
        store.finish_run(run_id, "completed")  # rows of a finished run are written at once
        store.add_artifact(run_id, "student", pt, "safetensors")  # another kind: untouched
        store.replace_artifacts(run_id, "export", [(onnx, "onnx", {"ok": True}),
                                                   (pt, "torchscript", None)])
        onnx.write_bytes(b"second")
        pt.unlink()  # a format that failed this time
        store.replace_artifacts(run_id, "export", [(onnx, "onnx", {"ok": False}),
                                                   (pt, "torchscript", {"ok": False})])
    with Store(db) as again:
        exports = again.artifacts(run_id, "export")
        assert [(Path(row["path"]).name, row["format"], row["meta"]) for row in exports] == [
            ("student.onnx", "onnx", {"ok": False})]
        assert exports[0]["sha256"] == hashlib.sha256(b"second").hexdigest()
        assert [row["kind"] for row in again.artifacts(run_id)] == ["student", "export"]


def test_table_counts_and_analyze_on_a_real_file(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with Store(db) as store:
        assert store.table_counts() == {"runs": 0, "metrics": 0, "logs": 0, "artifacts": 0}
        run_id = store.create_run({"name": "a"})
        store.add_metric_rows([(run_id, "student", s, 1, "loss/total", 1.0 / s, 0.0)
                               for s in range(1, 31)])
        store.add_log(run_id, "info", "hello")
        assert store.has_buffered
        assert store.table_counts() == {"runs": 1, "metrics": 30, "logs": 1, "artifacts": 0}
        assert not store.has_buffered  # the read wrote its own rows first
        store.finish_run(run_id, "completed")
        store.analyze()
    conn = sqlite3.connect(db)
    try:
        stats = dict(conn.execute("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'metrics'"))
    finally:
        conn.close()
    assert stats and all(stat.split()[0] == "30" for stat in stats.values())
