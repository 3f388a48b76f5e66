"""One validation for CLI and window: `kdstudio run` refuses a teacher checkpoint that does
not fit the teacher architecture, and a reused run's teacher trained on another dataset."""

from __future__ import annotations

from pathlib import Path

from kdstudio.cli import main
from kdstudio.core.checkpoint import save_model
from kdstudio.core.config import save_toml, validate
from kdstudio.core.engine import run
from kdstudio.core.models import create_model
from kdstudio.core.store import Store
from tests.helpers import tiny_config


def test_run_refuses_a_checkpoint_that_does_not_fit_the_teacher(tmp_path: Path, capsys) -> None:
    weights, _sidecar = save_model(create_model("mlp", (6,), 3, hidden_sizes=[16, 16]),
                                   tmp_path / "models", "teacher")
    config = tiny_config()
    config.teacher.checkpoint = str(weights)  # the config's teacher is mlp [32]
    save_toml(config, tmp_path / "cfg.toml")
    db = tmp_path / "h.db"
    assert main(["run", str(tmp_path / "cfg.toml"), "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"kdstudio: teacher.checkpoint: {weights} does not fit mlp")
    assert not db.exists()  # refused before the history is created

    config.teacher.params = {"hidden_sizes": [16, 16]}
    assert validate(config) == []  # the same file fits the teacher it was saved from


def test_run_refuses_a_reused_teacher_trained_on_another_dataset(tmp_path: Path,
                                                                 capsys) -> None:
    db = tmp_path / "h.db"
    trained = tiny_config()
    trained.data.params = {"samples": 240, "dims": 40, "classes": 10, "separation": 1.0}
    trained.teacher.params = {"hidden_sizes": [8]}
    trained.teacher.epochs, trained.optim.epochs = 1, 1
    with Store(db) as store:
        assert run(trained, store).status == "completed"
        teacher = store.runs_with_artifact("teacher")[0]["artifact_path"]
    reuse = tiny_config()
    reuse.data.dataset, reuse.data.params = "mnist1d", {}  # 40 inputs, 10 classes as well
    reuse.teacher.params = {"hidden_sizes": [8]}
    reuse.teacher.checkpoint = teacher
    assert validate(reuse) == []  # without the history the file fits: only the run tells
    save_toml(reuse, tmp_path / "cfg.toml")
    assert main(["run", str(tmp_path / "cfg.toml"), "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["kdstudio: teacher.checkpoint: run #1 trained its teacher on synthetic; "
                   "this run uses mnist1d"]
    with Store(db) as store:
        assert len(store.list_runs()) == 1  # nothing was started
