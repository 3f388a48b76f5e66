"""CLI: run, runs, show, presets; exit codes 0 / 1 / 2 and one line per problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kdstudio.cli import main
from kdstudio.core.config import save_toml
from kdstudio.core.store import Store
from tests.helpers import tiny_config


def write_config(tmp_path: Path, **distill: object) -> Path:
    path = tmp_path / "cfg.toml"
    save_toml(tiny_config(**distill), path)
    return path


def test_run_preset_end_to_end(tmp_path: Path, capsys) -> None:
    db = tmp_path / "x.db"
    assert main(["run", "--preset", "synthetic-quick", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "student + KD" in out and "KD gain" in out and "completed" in out
    with Store(db) as store:
        (row,) = store.list_runs()
        assert row["status"] == "completed" and row["name"] == "synthetic-quick"
        assert row["kd_gain"] is not None
        for phase in ("teacher", "baseline", "student"):
            assert store.metrics(row["id"], name="val/acc", phase=phase)


def test_run_config_file_with_overrides(tmp_path: Path, capsys) -> None:
    db = tmp_path / "x.db"
    config = write_config(tmp_path)
    code = main(["run", str(config), "--db", str(db), "--device", "cpu", "--quiet",
                 "--set", "optim.epochs=1", "--set", "name=override"])
    assert code == 0
    with Store(db) as store:
        (row,) = store.list_runs()
        assert row["name"] == "override" and row["config"]["optim"]["epochs"] == 1
    out = capsys.readouterr().out
    assert "[ student]" not in out  # --quiet prints only the summary
    assert "Run 1 completed" in out


def test_bad_config_exits_2_listing_every_problem(tmp_path: Path, capsys) -> None:
    db = tmp_path / "x.db"
    missing = tmp_path / "no-teacher.safetensors"
    config = write_config(tmp_path, temperature=-1.0, kd_weight=-1.0, method="fitnets",
                          student_layer="hidden9", teacher_layer="hidden1")
    code = main(["run", str(config), "--db", str(db), "--set", "data.batch_size=0",
                 "--set", "student.arch=\"nope\"", "--set", f"teacher.checkpoint=\"{missing}\""])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "kdstudio: data.batch_size: must be >= 1 (got 0)",
        "kdstudio: distill.temperature: must be > 0 (got -1)",
        "kdstudio: distill.kd_weight: must be >= 0 (got -1)",
        "kdstudio: student.arch: unknown model 'nope' (choose from: "
        + err[3].split("choose from: ")[1],
        f"kdstudio: teacher.checkpoint: no such file {missing}",
    ]
    assert "Traceback" not in "".join(err)
    with Store(db) as store:
        assert store.list_runs() == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["distill.ce_weight=0", "distill.kd_weight=0"], "distill: all loss weights are zero"),
        (["data.dataset=\"cifar\""], "data.dataset: unknown dataset 'cifar'"),
        (["distill.method=\"magic\""], "distill.method: unknown method 'magic'"),
        (["teacher.arch=\"vgg\""], "teacher.arch: unknown model 'vgg'"),
        (["distill.method=\"fitnets\"", "distill.student_layer=\"hidden1\"",
          "distill.teacher_layer=\"conv5\""], "distill.teacher_layer: no layer 'conv5' in mlp"),
        (["distill.temperature=0"], "distill.temperature: must be > 0 (got 0)"),
    ],
)
def test_each_bad_input_exits_2(tmp_path: Path, capsys, overrides: list[str], message: str
                                ) -> None:
    db = tmp_path / "x.db"
    args = ["run", str(write_config(tmp_path)), "--db", str(db)]
    for override in overrides:
        args += ["--set", override]
    assert main(args) == 2
    assert f"kdstudio: {message}" in capsys.readouterr().err
    with Store(db) as store:
        assert store.list_runs() == []


def test_unknown_preset_and_missing_file_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["run", "--preset", "nope", "--db", str(tmp_path / "x.db")]) == 2
    assert "unknown preset 'nope' (choose from: " in capsys.readouterr().err
    assert main(["run", str(tmp_path / "none.toml"), "--db", str(tmp_path / "x.db")]) == 2
    assert "no such config file" in capsys.readouterr().err
    (tmp_path / "broken.toml").write_text("name = [", encoding="utf-8")
    assert main(["run", str(tmp_path / "broken.toml"), "--db", str(tmp_path / "x.db")]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_failed_run_exits_1(tmp_path: Path, capsys) -> None:
    config = write_config(tmp_path)
    code = main(["run", str(config), "--db", str(tmp_path / "x.db"), "--quiet",
                 "--set", "optim.name=\"sgd\"", "--set", "optim.lr=1e30",
                 "--set", "optim.schedule=\"constant\""])
    assert code == 1
    assert "Error: the teacher loss became" in capsys.readouterr().err


def test_runs_and_show(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "x.db")
    main(["run", str(write_config(tmp_path)), "--db", db, "--quiet"])
    capsys.readouterr()
    assert main(["runs", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert "tiny" in listing and "completed" in listing and "mlp -> mlp" in listing
    assert main(["show", "1", "--db", db]) == 0
    shown = capsys.readouterr().out
    assert "Run 1: tiny  [completed]" in shown and 'dataset = "synthetic"' in shown
    assert "student.safetensors" in shown
    assert main(["show", "1", "--db", db, "--classes"]) == 0
    table = capsys.readouterr().out.split("Per-class test accuracy")[1].splitlines()
    assert table[1].split() == ["class", "n", "teacher", "alone", "student", "gain"]
    assert [line.split()[0] for line in table[3:6]] == ["class", "class", "class"]
    assert main(["show", "99", "--db", db]) == 2
    assert "no run '99'" in capsys.readouterr().err


def test_presets_listing_via_python_m() -> None:
    result = subprocess.run([sys.executable, "-m", "kdstudio", "presets"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert {"digits-kd", "mnist1d-kd", "mnist1d-fitnets", "fashion-mnist-kd",
            "synthetic-quick", "cifar100-resnet32x4-resnet8x4"} <= set(names)
    # the descriptions start in one column, however long the names
    starts = {len(line) - len(line.split(None, 1)[1]) for line in result.stdout.splitlines()}
    assert len(starts) == 1


def test_argparse_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as error:
        main(["run"])
    assert error.value.code == 2


def test_runs_options_are_checked(capsys) -> None:
    for argv in (["runs", "--status", "bogus"], ["runs", "--limit", "0"]):
        with pytest.raises(SystemExit) as error:
            main(argv)
        assert error.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'bogus'" in err and "must be a positive integer (got 0)" in err


def test_cli_knows_every_run_status() -> None:
    from kdstudio.cli import RUN_STATUSES
    from kdstudio.core.store import STATUSES

    assert RUN_STATUSES == STATUSES


def test_presets_are_found_after_a_user_install(tmp_path: Path, monkeypatch) -> None:
    """`pip install --user` puts the data files under the user base, not sys.prefix."""
    from kdstudio.core import paths
    from kdstudio.core.presets import list_presets, load_preset

    user_base = tmp_path / "userbase"
    folder = user_base / "share" / "kdstudio" / "presets"
    folder.mkdir(parents=True)
    (folder / "mine.toml").write_text('# my preset\nname = "mine"\n', encoding="utf-8")
    monkeypatch.setenv("PYTHONUSERBASE", str(user_base))
    monkeypatch.setattr(paths, "SOURCE_PRESETS", tmp_path / "no-checkout")
    assert folder in paths.preset_dirs()
    assert paths.presets_dir() == folder
    assert list_presets() == ["mine"] and load_preset("mine") == {"name": "mine"}


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    import kdstudio

    result = subprocess.run([sys.executable, "-m", "kdstudio", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == f"kdstudio {version('kdstudio')}\n"
    assert version("kdstudio") == kdstudio.__version__  # pyproject reads it from there


def test_bad_input_lines_are_escaped(tmp_path: Path, capsys) -> None:
    assert main(["run", "--preset", "synthetic-quick", "--db", str(tmp_path / "x.db"),
                 "--set", "optim.name=\"ev\\u001b[2Jil\\nx\""]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err
    assert "optim.name: unknown optimiser 'ev\\x1b[2Jil\\nx'" in err


def test_reading_commands_load_neither_torch_nor_the_window(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with Store(db, create=True):
        pass
    heavy = ("torch", "kdstudio.core.engine", "kdstudio.gui", "PySide6")
    code = ("import sys; from kdstudio.cli import main; code = main(sys.argv[1:]); "
            f"print(code, [m for m in {heavy!r} if m in sys.modules])")
    for argv in (["runs", "--db", str(db)], ["presets"], ["check", "--db", str(db)]):
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                              text=True, timeout=60)
        assert done.stderr == "", argv
        assert done.stdout.splitlines()[-1] == "0 []", argv
