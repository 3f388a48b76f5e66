"""Paths that travel: artifact paths are stored relative to the history file's folder, so
`show --classes`, `export`, the dark-knowledge data and "reuse this teacher" work from any
folder and after the history and its `-artifacts` folder move together; histories written
with absolute or working-folder paths are migrated on open."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from kdstudio.core.analysis import dark_knowledge
from kdstudio.core.config import config_from_dict, validate
from kdstudio.core.engine import run
from kdstudio.core.store import Store
from tests.helpers import tiny_config
from tests.reliability.conftest import assert_no_traceback, run_cli

QUICK = ["--preset", "synthetic-quick", "--quiet", "--set", "optim.epochs=1",
         "--set", "teacher.epochs=1"]


def move_history(db: Path, folder: Path) -> Path:
    """Move the history file and its artifacts folder into `folder`; the new file."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.move(db, folder / db.name)
    shutil.move(db.parent / f"{db.stem}-artifacts", folder / f"{db.stem}-artifacts")
    return folder / db.name


def stored_paths(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    try:
        return [path for (path,) in conn.execute("SELECT path FROM artifacts ORDER BY id")]
    finally:
        conn.close()


def assert_show_and_export_work(db_arg: str, cwd: Path, out: str) -> None:
    shown = run_cli("show", "1", "--classes", "--db", db_arg, cwd=cwd)
    assert shown.returncode == 0, shown.stderr
    assert_no_traceback(shown)
    assert "Per-class test accuracy" in shown.stdout
    exported = run_cli("export", "1", "--format", "safetensors", "--out", out, "--db", db_arg,
                       cwd=cwd)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert (cwd / out / "student.safetensors").is_file()


def test_a_relative_db_from_one_folder_works_from_another_and_after_a_move(
        tmp_path: Path) -> None:
    folder_a, folder_b = tmp_path / "A", tmp_path / "B"
    folder_a.mkdir()
    folder_b.mkdir()
    (folder_a / "sub").mkdir()
    done = run_cli("run", *QUICK, "--db", "sub/h.db", cwd=folder_a)
    assert done.returncode == 0, done.stderr
    db = folder_a / "sub" / "h.db"
    paths = stored_paths(db)
    assert paths and all(p.startswith("h-artifacts/run-1/") for p in paths)  # not "sub/..."
    assert_show_and_export_work("../A/sub/h.db", folder_b, "out-1")
    moved = move_history(db, tmp_path / "C" / "deeper")
    assert_show_and_export_work("../C/deeper/h.db", folder_b, "out-2")
    with Store(moved) as store:  # the export rows: absolute, outside the history
        exports = [a["path"] for a in store.artifacts(1, "export")]
    assert str(folder_b / "out-2" / "student.safetensors") in exports


def downgrade(db: Path, style: str, cwd: Path) -> None:
    """Make a history look as the previous version wrote it: artifact paths absolute or
    relative to the working folder of the run, and m005 not yet applied."""
    conn = sqlite3.connect(db)
    try:
        for artifact_id, path in conn.execute("SELECT id, path FROM artifacts").fetchall():
            absolute = db.parent / path
            old = str(absolute) if style == "absolute" else str(absolute.relative_to(cwd))
            conn.execute("UPDATE artifacts SET path = ? WHERE id = ?", [old, artifact_id])
        for run_id, text in conn.execute("SELECT id, config FROM runs").fetchall():
            config = json.loads(text)
            checkpoint = config["teacher"].get("checkpoint")
            if checkpoint:
                config["teacher"]["checkpoint"] = str(db.parent / checkpoint)
                conn.execute("UPDATE runs SET config = ? WHERE id = ?",
                             [json.dumps(config), run_id])
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = "
                     "'m005_relative_artifact_paths'")
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("style", ["absolute", "working-folder"])
def test_a_history_of_the_previous_version_is_migrated_and_travels(
        tmp_path: Path, style: str) -> None:
    db = tmp_path / "old" / "h.db"
    with Store(db) as store:
        assert run(tiny_config(), store).status == "completed"
        teacher = store.runs_with_artifact("teacher")[0]["artifact_path"]
        reuse = tiny_config()
        reuse.teacher.checkpoint = teacher  # "reuse this teacher", as the setup panel does
        assert run(reuse, store).status == "completed"
    downgrade(db, style, cwd=tmp_path)
    if style == "absolute":
        assert stored_paths(db)[0] == str(db.parent / "h-artifacts/run-1/teacher.safetensors")
    else:
        assert stored_paths(db)[0] == "old/h-artifacts/run-1/teacher.safetensors"
    with Store(db):  # opening migrates
        pass
    assert all(p.startswith("h-artifacts/run-") for p in stored_paths(db))
    moved = move_history(db, tmp_path / "elsewhere")
    with Store(moved) as store:
        knowledge = dark_knowledge(store, 1)  # what the dark-knowledge view loads
        assert set(knowledge.logits) == {"teacher", "baseline", "student"}
        saved = store.get_run(2)["config"]
    checkpoint = saved["teacher"]["checkpoint"]
    assert checkpoint == str(moved.parent / "h-artifacts" / "run-1" / "teacher.safetensors")
    config, problems = config_from_dict(saved)
    assert problems + validate(config) == []  # the saved config runs again as it is


def test_reuse_this_teacher_travels_with_the_history(tmp_path: Path) -> None:
    db = tmp_path / "first" / "h.db"
    with Store(db) as store:
        assert run(tiny_config(), store).status == "completed"
        (teacher_run,) = store.runs_with_artifact("teacher")
        reuse = tiny_config()
        reuse.teacher.checkpoint = teacher_run["artifact_path"]
        assert run(reuse, store).status == "completed"
    conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True)
    (stored,) = conn.execute("SELECT config FROM runs WHERE id = 2").fetchone()
    conn.close()
    assert json.loads(stored)["teacher"]["checkpoint"] == "h-artifacts/run-1/teacher.safetensors"
    moved = move_history(db, tmp_path / "second")
    with Store(moved) as store:
        (teacher_run,) = [r for r in store.runs_with_artifact("teacher") if r["id"] == 1]
        assert Path(teacher_run["artifact_path"]).is_file()
        assert teacher_run["artifact_path"].startswith(str(moved.parent))
        saved = store.get_run(2)["config"]
        config, _ = config_from_dict(saved)
        result = run(config, store)  # "run this config again", after the move
        assert result.status == "completed", result.error
        assert store.get_run(result.run_id)["config"]["teacher"]["checkpoint"] == str(
            moved.parent / "h-artifacts" / "run-1" / "teacher.safetensors")


def test_the_setup_panel_reuses_a_teacher_from_a_moved_history(qtbot, tmp_path: Path) -> None:
    from kdstudio.gui.setup.panel import SOURCE_RUN, SetupPanel

    db = tmp_path / "first" / "h.db"
    with Store(db) as store:
        assert run(tiny_config(), store).status == "completed"
    moved = move_history(db, tmp_path / "second")
    store = Store(moved)
    try:
        panel = SetupPanel(store_provider=lambda: store)
        qtbot.addWidget(panel)
        panel.set_config(tiny_config())
        panel.select_saved_run(1)
        assert panel.source_combo.currentData() == SOURCE_RUN
        config, problems = panel.run_config()
        assert config.teacher.checkpoint == str(
            moved.parent / "h-artifacts" / "run-1" / "teacher.safetensors")
        assert not [p for p in problems if p.startswith("teacher.checkpoint")]
    finally:
        store.close()
