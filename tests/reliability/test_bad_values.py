"""Bad values that used to reach tracebacks: each ends with one line naming the key, file or
value, exit 2, and nothing written to the history.

Every case runs through the CLI's own `main` (fast, in this process); the ones that matter most
also run as a real `python -m kdstudio` subprocess.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from kdstudio.cli import main
from kdstudio.cli.training import load_run_config
from kdstudio.core.config import save_toml
from kdstudio.core.memory import available_memory, format_bytes, memory_problem
from kdstudio.core.models import create_model
from kdstudio.core.store import Store
from tests.helpers import tiny_config
from tests.reliability.conftest import assert_no_traceback, cli_env, run_cli


def teacher_state() -> dict[str, torch.Tensor]:
    """The state dict of tiny_config's teacher (an MLP 6 -> 32 -> 3)."""
    model = create_model("mlp", (6,), 3, hidden_sizes=[32])
    return {key: value.clone() for key, value in model.state_dict().items()}


def nan_safetensors(folder: Path) -> Path:
    state = teacher_state()
    state["hidden.0.0.weight"][2, 1] = float("nan")
    save_file(state, str(folder / "nan.safetensors"))
    return folder / "nan.safetensors"


def inf_pt(folder: Path) -> Path:
    state = teacher_state()
    state["head.bias"][0] = float("-inf")
    torch.save(state, folder / "inf.pt")
    return folder / "inf.pt"


def whole_model_pt(folder: Path) -> Path:
    torch.save(create_model("mlp", (6,), 3, hidden_sizes=[32]), folder / "whole.pt")
    return folder / "whole.pt"


def random_pt(folder: Path) -> Path:
    (folder / "random.pt").write_bytes(os.urandom(4096).replace(b"PK", b"pk"))
    return folder / "random.pt"


def empty_pt(folder: Path) -> Path:
    (folder / "empty.pt").write_bytes(b"")
    return folder / "empty.pt"


def list_pt(folder: Path) -> Path:
    torch.save([1, 2, 3], folder / "list.pt")
    return folder / "list.pt"


# (teacher file maker, what the one line must say)
CHECKPOINTS: list[tuple[Callable[[Path], Path], list[str]]] = [
    (nan_safetensors, ["tensor 'hidden.0.0.weight' in ", "nan.safetensors holds NaN"]),
    (inf_pt, ["tensor 'head.bias' in ", "inf.pt holds Inf"]),
    (whole_model_pt, ["whole.pt: it is a pickled whole model", "torch.save(model)",
                      "KD Studio loads only state dicts of tensors",
                      "torch.save(model.state_dict())"]),
    (random_pt, ["random.pt: it is neither a safetensors file nor a PyTorch checkpoint"]),
    (empty_pt, ["empty.pt: the file is empty"]),
    (list_pt, ["list.pt: it holds a list, not a state dict of tensors"]),
]

# (--set values, what the one line must say)
OVERRIDES: list[tuple[list[str], list[str]]] = [
    (["seed=99999999999999999999"],
     ["seed: must be from 0 to 9,223,372,036,854,775,807 (2**63 - 1",
      "99,999,999,999,999,999,999"]),
    (["seed=-99999999999999999999"], ["seed: must be from 0 to 9,223,372,036,854,775,807"]),
    (["seed=9223372036854775808"], ["seed: must be from 0 to"]),
    (["data.params.samples=1000000000000"],
     ["data.params: synthetic data of 1,000,000,000,000 samples x 6 dims would need 160.0 TB"]),
    (["data.params.dims=1000000000000"],
     ["data.params: synthetic data of 240 samples x 1,000,000,000,000 dims would need 5.8 PB"]),
    (["data.params.classes=1000000000000"], ["data.params: classes must be at most 100,000"]),
    (["data.params.samples=inf"], ["data.params: samples must be a whole number (got inf)"]),
    (["data.params.samples=1e300"], ["data.params: samples must be at most", "301-digit"]),
    (["student.params.hidden_sizes=[100000000000]"],
     ["student.params: training mlp with 1,000,000,000,003 parameters would need 16.0 TB"]),
    (["threads=99999999999"], ["threads: must be at most 1,024 (got 99,999,999,999)"]),
    (["data.batch_size=99999999999999999999"], ["data.batch_size: must be at most 2,147,483,647"]),
    (["optim.epochs=99999999999999999999"], ["optim.epochs: must be at most 100,000"]),
    (["optim.lr=[1,"], ["--set optim.lr=[1,: the value is not valid TOML", "needs quotes"]),
    (['name="unclosed'], ['--set name="unclosed: the value is not valid TOML']),
    (["name=\"a\"\nseed=4"], ["the value must be one TOML value, not several lines"]),
    (["noequals"], ["--set noequals: expected key.path=value"]),
    (["bogus.key=1"], ["bogus: unknown key (expected one of: autocast, compile, data, device"]),
    (["optim.colour=1"], ["optim.colour: unknown key"]),
    (["name.sub=1"], ["--set name.sub=1: 'name' is not a table"]),
    (["teacher.checkpoint=\"a\\u0000b\""], ["teacher.checkpoint: 'a\\x00b' holds a NUL byte"]),
]


def config_file(folder: Path) -> Path:
    path = folder / "cfg.toml"
    save_toml(tiny_config(), path)
    return path


def assert_one_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kdstudio: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in err and "\x1b" not in err and "weights_only" not in err


def assert_nothing_written(db: Path) -> None:
    if db.exists():
        with Store(db) as store:
            assert store.list_runs() == []


@pytest.mark.parametrize(("overrides", "fragments"), OVERRIDES,
                         ids=[o[0][0][:30] for o in OVERRIDES])
def test_bad_override_is_one_line(tmp_path: Path, capsys, overrides: list[str],
                                  fragments: list[str]) -> None:
    db = tmp_path / "h.db"
    args = ["run", str(config_file(tmp_path)), "--db", str(db)]
    for override in overrides:
        args += ["--set", override]
    assert main(args) == 2
    assert_one_line(capsys.readouterr().err, *fragments)
    assert_nothing_written(db)


@pytest.mark.parametrize(("make", "fragments"), CHECKPOINTS,
                         ids=[c[0].__name__ for c in CHECKPOINTS])
def test_bad_teacher_file_is_refused_up_front(tmp_path: Path, capsys, make, fragments) -> None:
    db = tmp_path / "h.db"
    teacher = make(tmp_path)
    code = main(["run", str(config_file(tmp_path)), "--db", str(db),
                 "--set", f"teacher.checkpoint=\"{teacher}\"", "--set", "teacher.epochs=0"])
    assert code == 2
    err = capsys.readouterr().err
    assert_one_line(err, "teacher.checkpoint: ", *fragments)
    if "NaN" not in fragments[-1] and "Inf" not in fragments[-1]:
        assert f"teacher.checkpoint: cannot read {teacher}: " in err
    assert_nothing_written(db)


def bad_config_files(folder: Path) -> list[tuple[Path, list[str]]]:
    binary = folder / "binary.toml"
    binary.write_bytes(bytes(range(256)) * 8)
    latin = folder / "latin1.toml"
    latin.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    folder_config = folder / "folder.toml"
    folder_config.mkdir()
    broken = folder / "broken.toml"
    broken.write_text("name = [\n", encoding="utf-8")
    huge = folder / "huge.toml"
    huge.write_text("# " + "x" * 1_100_000 + "\n", encoding="utf-8")
    under_a_file = folder / "binary.toml" / "x.toml"
    return [
        (binary, [f"{binary}: a binary file, not a TOML config"]),
        (latin, [f"{latin}: not UTF-8 text (byte 0xe9 at offset 11)"]),
        (folder_config, [f"{folder_config}: is a folder, not a config file"]),
        (broken, [f"{broken}: not valid TOML"]),
        (huge, [f"{huge}: too large for a config file"]),
        (under_a_file, [f"{under_a_file}: cannot read (Not a directory)"]),
        (folder / "missing.toml", [f"{folder / 'missing.toml'}: no such config file"]),
        # a file that no one, not even root, can read: the kernel answers EIO
        (Path("/proc/self/mem"), ["/proc/self/mem: cannot read (Input/output error)"]),
    ]


def test_bad_config_files_name_the_file(tmp_path: Path, capsys) -> None:
    db = tmp_path / "h.db"
    for path, fragments in bad_config_files(tmp_path):
        assert main(["run", str(path), "--db", str(db)]) == 2
        assert_one_line(capsys.readouterr().err, *fragments)
    assert_nothing_written(db)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_config_names_the_file(tmp_path: Path, capsys) -> None:
    path = config_file(tmp_path)
    path.chmod(0)
    assert main(["run", str(path), "--db", str(tmp_path / "h.db")]) == 2
    assert_one_line(capsys.readouterr().err, f"{path}: cannot read (Permission denied)")


def test_config_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = config_file(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    args = argparse.Namespace(preset=None, config=str(path), device=None, overrides=[])
    assert load_run_config(args) == tiny_config()


@pytest.mark.parametrize("command", [["show", "99999999999999999999999"],
                                     ["export", "99999999999999999999999", "--out", "OUT"],
                                     ["export-metrics", "1", "99999999999999999999999",
                                      "--out", "OUT/m.csv"],
                                     ["show", "\u00b2"]])
def test_run_id_beyond_sqlite_is_no_run(tmp_path: Path, capsys, command: list[str]) -> None:
    db = tmp_path / "h.db"
    args = [a.replace("OUT", str(tmp_path / "out")) for a in command]
    assert main([*args, "--db", str(db)]) == 2
    key = command[2] if command[0] == "export-metrics" else command[1]
    assert_one_line(capsys.readouterr().err, f"no run '{key}'")
    assert not (tmp_path / "out").exists()


def test_memory_check_compares_with_available_memory(monkeypatch) -> None:
    from kdstudio.core import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 8 * 10**9)
    assert memory.memory_problem("x", 8 * 10**9) is None
    assert memory.memory_problem("x", 8 * 10**9 + 1) == (
        "x would need 8.0 GB of memory; this machine has 8.0 GB available")
    assert 10**8 < available_memory() < 10**15
    assert [format_bytes(n) for n in (512, 3_700_000_000, 4.8e14, 10**21)] == [
        "512 B", "3.7 GB", "480.0 TB", "1000.0 EB"]
    assert memory_problem("nothing", 0) is None


def run_measured(*args: str | Path) -> tuple[subprocess.CompletedProcess[str], float, int]:
    """A CLI subprocess, its wall time and its peak resident memory in bytes."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "kdstudio", *map(str, args)],
                               env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    out, err = process.communicate(timeout=120)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (subprocess.CompletedProcess(process.args, process.returncode, out, err),
            time.monotonic() - started, usage.ru_maxrss * 1024)


def test_huge_synthetic_data_is_refused_before_allocating(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    process, seconds, peak = run_measured(
        "run", config_file(tmp_path), "--db", db, "--set", "data.params.samples=10000000000",
        "--set", "data.params.dims=1000")
    assert process.returncode == 2
    assert_one_line(process.stderr, "data.params: synthetic data of 10,000,000,000 samples x "
                                    "1,000 dims would need 240.2 TB of memory; this machine "
                                    "has ", " available")
    # the 240 TB were never asked for: torch's import is the biggest thing this process held
    assert peak < 2 * 10**9, format_bytes(peak)
    assert seconds < 60
    assert_nothing_written(db)


@pytest.mark.parametrize("case", ["override", "nan", "whole", "binary", "show"])
def test_bad_values_through_a_real_process(tmp_path: Path, case: str) -> None:
    db = tmp_path / "h.db"
    config = config_file(tmp_path)
    checkpoint = {"nan": nan_safetensors, "whole": whole_model_pt, "random": random_pt}
    if case in checkpoint:
        teacher = checkpoint[case](tmp_path)
        args: list[str | Path] = ["run", config, "--set", f"teacher.checkpoint=\"{teacher}\"",
                                  "--set", "teacher.epochs=0"]
        expected = {"nan": "holds NaN (1 of 192 values)", "whole": "it is a pickled whole model",
                    "random": "it is neither a safetensors file nor a PyTorch checkpoint"}[case]
    elif case == "binary":
        (tmp_path / "x.toml").write_bytes(os.urandom(2000) + b"\x00")
        args, expected = ["run", tmp_path / "x.toml"], f"{tmp_path / 'x.toml'}: a binary file"
    elif case == "show":
        args, expected = ["show", "99999999999999999999999"], "run ids go up to"
    else:
        args = ["run", config, "--set", "seed=99999999999999999999" if case == "seed"
                else "optim.lr=[1,"]
        expected = "seed: must be from 0 to" if case == "seed" else "is not valid TOML"
    process = run_cli(*args, "--db", db)
    assert process.returncode == 2, process.stderr
    assert_no_traceback(process)
    assert_one_line(process.stderr, expected)
    assert_nothing_written(db)
