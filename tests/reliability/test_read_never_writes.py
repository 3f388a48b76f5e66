"""A read never writes: read commands on a history path that does not exist create nothing
and say so in one line naming --db or $KDSTUDIO_DB; `run` creates a history only where it
may."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kdstudio.core.store import Store
from tests.reliability.conftest import assert_no_traceback, cli_env, run_cli

READ_COMMANDS = {
    "runs": ["runs"],
    "show": ["show", "1"],
    "export": ["export", "1", "--out", "{tmp}/exported"],
    "export-metrics": ["export-metrics", "1", "--out", "{tmp}/metrics.csv"],
    "check": ["check"],
}


def listing(root: Path) -> list[tuple[str, int, int]]:
    """Every path under root with its size and modification time."""
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in root.rglob("*"))


def read_command(name: str, tmp_path: Path) -> list[str]:
    return [part.format(tmp=tmp_path) for part in READ_COMMANDS[name]]


def env_without_db(**extra: str) -> dict[str, str]:
    env = cli_env(**extra)
    if "KDSTUDIO_DB" not in extra:
        env.pop("KDSTUDIO_DB", None)
    return env


@pytest.mark.parametrize("command", sorted(READ_COMMANDS))
def test_read_on_a_missing_folder_exits_2_and_creates_nothing(tmp_path: Path,
                                                               command: str) -> None:
    db = tmp_path / "no-such-folder" / "h.db"
    before = listing(tmp_path)
    done = run_cli(*read_command(command, tmp_path), "--db", db, env=env_without_db())
    assert done.returncode == 2, done.stderr
    assert_no_traceback(done)
    assert done.stderr.splitlines() == [
        f"kdstudio: --db {db}: the folder {db.parent} does not exist"]
    assert listing(tmp_path) == before


@pytest.mark.parametrize("command", sorted(READ_COMMANDS))
def test_read_on_a_missing_file_says_no_history_and_creates_nothing(tmp_path: Path,
                                                                    command: str) -> None:
    db = tmp_path / "h.db"
    before = listing(tmp_path)
    done = run_cli(*read_command(command, tmp_path), env=env_without_db(KDSTUDIO_DB=str(db)))
    assert done.returncode == 2, done.stderr
    assert_no_traceback(done)
    assert done.stderr.splitlines() == [f"kdstudio: $KDSTUDIO_DB={db}: no history at {db}"]
    assert listing(tmp_path) == before


def test_kdstudio_db_naming_a_missing_folder_is_named_with_the_variable(
        tmp_path: Path) -> None:
    db = tmp_path / "x" / "y.db"
    done = run_cli("runs", env=env_without_db(KDSTUDIO_DB=str(db)))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"kdstudio: $KDSTUDIO_DB={db}: the folder {db.parent} does not exist"]
    assert list(tmp_path.iterdir()) == []


def test_read_commands_on_an_empty_file_leave_it_empty(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    db.touch()
    before = listing(tmp_path)
    for command in ("runs", "show", "export-metrics"):
        done = run_cli(*read_command(command, tmp_path), "--db", db, env=env_without_db())
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            f"kdstudio: --db {db}: no history at {db} (the file is empty)"]
    assert listing(tmp_path) == before


def test_check_on_an_empty_file_reports_a_new_history(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    db.touch()
    done = run_cli("check", "--db", db, env=env_without_db())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Runs:            0" in done.stdout and "Result:          ok" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.db"]
    assert db.stat().st_size == 0


def test_run_never_creates_a_folder_named_by_db_or_the_variable(tmp_path: Path) -> None:
    db = tmp_path / "new-folder" / "h.db"
    for args, env, label in (
            (["--db", str(db)], env_without_db(), f"--db {db}"),
            ([], env_without_db(KDSTUDIO_DB=str(db)), f"$KDSTUDIO_DB={db}")):
        done = run_cli("run", "--preset", "synthetic-quick", *args, env=env)
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            f"kdstudio: {label}: the folder {db.parent} does not exist (create it first)"]
    assert list(tmp_path.iterdir()) == []


def test_run_makes_an_empty_file_a_history_and_creates_the_default_location(
        tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    db.touch()  # SQLite takes an empty file for a new database: run fills it
    quick = ["--preset", "synthetic-quick", "--quiet", "--set", "optim.epochs=1",
             "--set", "teacher.epochs=1"]
    done = run_cli("run", *quick, "--db", db, env=env_without_db())
    assert done.returncode == 0, done.stderr
    assert os.path.getsize(db) > 0
    with Store(db) as store:
        assert [run["status"] for run in store.list_runs()] == ["completed"]
    data_home = tmp_path / "xdg"  # the user data folder does not exist before the first run
    done = run_cli("run", *quick, env=env_without_db(XDG_DATA_HOME=str(data_home)))
    assert done.returncode == 0, done.stderr
    default = data_home / "kdstudio" / "history.db"
    with Store(default) as store:
        assert len(store.list_runs()) == 1
