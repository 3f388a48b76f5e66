"""Student export (safetensors + JSON, TorchScript, ONNX, model card) and metrics CSV."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from kdstudio.cli import main
from kdstudio.core.checkpoint import load_model
from kdstudio.core.config import config_from_dict
from kdstudio.core.data import prepare_data
from kdstudio.core.engine import run
from kdstudio.core.export import (
    ExportError,
    export_metrics_csv,
    export_student,
    parse_formats,
    real_inputs,
)
from kdstudio.core.models import create_model
from kdstudio.core.store import Store

TINY = {
    "name": "tiny-export", "seed": 3, "device": "cpu",
    "data": {"dataset": "synthetic", "val_fraction": 0.2, "batch_size": 64,
             "params": {"samples": 300, "dims": 12, "classes": 3, "separation": 1.5}},
    "teacher": {"arch": "mlp", "params": {"hidden_sizes": [32]}, "epochs": 2},
    "student": {"arch": "cnn", "params": {"channels": [4], "kernel_size": 3}},
    "distill": {"method": "kd", "temperature": 2.0},
    "optim": {"name": "adam", "lr": 0.01, "epochs": 2},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """One real tiny run (teacher MLP, CNN student) in its own history file."""
    db = tmp_path_factory.mktemp("export") / "history.db"
    config, problems = config_from_dict(TINY)
    assert problems == []
    with Store(db) as store:
        result = run(config, store)
    assert result.status == "completed", result.error
    return db, result.run_id


@pytest.fixture(scope="module")
def exported(trained: tuple[Path, int], tmp_path_factory: pytest.TempPathFactory):
    db, run_id = trained
    out = tmp_path_factory.mktemp("exported") / "student-out"
    with Store(db) as store:
        report = export_student(store, run_id, out, "all")
    return db, run_id, out, report


def _app_student(db: Path, run_id: int) -> torch.nn.Module:
    """The student as the app loads it from the run's saved files."""
    with Store(db) as store:
        weights = Path(store.artifacts(run_id, "student")[0]["path"])
    return load_model(weights.with_suffix(".json"))


def _test_inputs(n: int) -> torch.Tensor:
    d = TINY["data"]
    splits = prepare_data(d["dataset"], "", d["params"], d["val_fraction"], TINY["seed"])
    return splits.x_test[:n]


def test_export_writes_every_file_and_each_matches_the_student(exported) -> None:
    db, run_id, out, report = exported
    names = sorted(p.name for p in out.iterdir())
    assert names == ["MODEL_CARD.md", "student.json", "student.onnx", "student.pt",
                     "student.safetensors"]
    assert report.ok
    checked = {f.format: f for f in report.files if f.max_abs_diff is not None}
    assert set(checked) == {"safetensors", "torchscript", "onnx"}
    assert all(f.max_abs_diff <= 1e-5 for f in checked.values())
    assert "onnxruntime" in checked["onnx"].checked_with
    assert report.inputs.endswith("real test inputs of synthetic")
    assert report.student_latency_ms > 0 and report.teacher_latency_ms > 0


def test_torchscript_reloads_and_matches_within_1e5(exported) -> None:
    db, run_id, out, _ = exported
    x = _test_inputs(50)
    with torch.no_grad():
        expected = _app_student(db, run_id)(x)
        got = torch.jit.load(str(out / "student.pt"))(x)
    assert got.shape == (50, 3)
    assert (got - expected).abs().max().item() <= 1e-5


def test_onnx_runs_with_any_batch_size_and_matches_within_1e5(exported) -> None:
    import onnxruntime

    db, run_id, out, _ = exported
    session = onnxruntime.InferenceSession(str(out / "student.onnx"),
                                           providers=["CPUExecutionProvider"])
    student = _app_student(db, run_id)
    for n in (1, 7, 60):
        x = _test_inputs(n)
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        with torch.no_grad():
            expected = student(x).numpy()
        assert got.shape == (n, 3)
        assert np.abs(got - expected).max() <= 1e-5
    assert not list(out.glob("*.data")), "the ONNX model must be one file"


def test_student_json_and_safetensors_alone_rebuild_the_student(exported, tmp_path: Path
                                                                ) -> None:
    db, run_id, out, _ = exported
    for name in ("student.json", "student.safetensors"):
        shutil.copy(out / name, tmp_path / name)
    spec = json.loads((tmp_path / "student.json").read_text())
    assert spec["arch"] == "cnn" and spec["params"] == {"channels": [4], "kernel_size": 3}
    assert spec["input_shape"] == [12] and spec["num_classes"] == 3
    assert spec["class_names"] == ["class 0", "class 1", "class 2"]
    assert len(spec["mean"]) == 1 and spec["std"][0] > 0
    rebuilt = create_model(spec["arch"], spec["input_shape"], spec["num_classes"],
                           **spec["params"])
    state = load_file(str(tmp_path / "student.safetensors"))
    assert set(state) == set(rebuilt.state_dict()), "only the student's own tensors"
    rebuilt.load_state_dict(state)
    rebuilt.eval()
    x = _test_inputs(40)
    with torch.no_grad():
        diff = (rebuilt(x) - _app_student(db, run_id)(x)).abs().max().item()
    assert diff <= 1e-5


def test_model_card_reports_accuracies_sizes_and_latency(exported) -> None:
    db, run_id, out, report = exported
    card = (out / "MODEL_CARD.md").read_text()
    with Store(db) as store:
        row = store.get_run(run_id)
    assert f"{row['student_test_acc']:.2%}" in card
    assert f"{row['baseline_test_acc']:.2%}" in card
    assert f"{row['teacher_test_acc']:.2%}" in card
    assert f"{row['kd_gain'] * 100:+.2f} points" in card
    assert f"{row['student_params']:,}" in card and f"{row['teacher_params']:,}" in card
    assert f"| student | {report.student_latency_ms:.3f} |" in card
    assert f"| teacher | {report.teacher_latency_ms:.3f} |" in card
    assert "`student.onnx`" in card and "max abs difference" in card


def test_export_is_recorded_in_artifacts_and_reexport_replaces(exported) -> None:
    db, run_id, out, report = exported
    with Store(db) as store:
        rows = store.artifacts(run_id, "export")
        assert {r["format"] for r in rows} == {"json", "safetensors", "torchscript", "onnx",
                                               "markdown"}
        assert all(Path(r["path"]).parent == out for r in rows)
        onnx_row = next(r for r in rows if r["format"] == "onnx")
        assert onnx_row["meta"]["max_abs_diff"] <= 1e-5
        assert onnx_row["meta"]["student_latency_ms"] == report.student_latency_ms
        export_student(store, run_id, out, "torchscript")
        again = store.artifacts(run_id, "export")
    assert len(again) == len(rows)
    assert {r["path"] for r in again} == {r["path"] for r in rows}


def test_single_format_writes_only_that_model_file(trained, tmp_path: Path) -> None:
    db, run_id = trained
    with Store(db) as store:
        report = export_student(store, "tiny-export", tmp_path, "safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["MODEL_CARD.md", "student.json",
                                                          "student.safetensors"]
    assert report.run_id == run_id and report.ok


def test_bad_inputs_give_one_line_errors(trained, tmp_path: Path) -> None:
    db, run_id = trained
    with Store(db) as store:
        with pytest.raises(ExportError, match="no run 'nope'"):
            export_student(store, "nope", tmp_path, "all")
        with pytest.raises(ExportError, match="unknown format pkl"):
            export_student(store, run_id, tmp_path, "pkl")
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        with pytest.raises(ExportError, match="is a file, not a folder"):
            export_student(store, run_id, blocker, "all")
        empty = store.create_run({"name": "never-trained"})
        store.finish_run(empty, "failed", "boom")
        with pytest.raises(ExportError, match="has no saved student"):
            export_student(store, empty, tmp_path / "x", "all")
    assert parse_formats("onnx, safetensors") == ["safetensors", "onnx"]
    assert parse_formats("all") == ["safetensors", "torchscript", "onnx"]


def test_checks_fall_back_to_normal_inputs_when_data_is_gone() -> None:
    gone = {"config": {"seed": 0, "data": {"dataset": "fashion-mnist",
                                           "path": "/nonexistent/fmnist"}}}
    x, source = real_inputs(gone, [1, 28, 28], 16)
    assert x.shape == (16, 1, 28, 28)
    assert source.startswith("16 standard-normal inputs (the fashion-mnist data could not")


def test_metrics_csv_holds_every_row_of_each_run(trained, tmp_path: Path) -> None:
    db, run_id = trained
    target = tmp_path / "metrics.csv"
    with Store(db) as store:
        other = store.create_run({"name": "other"})
        store.add_metrics(other, "student", 1, 1, {"loss/total": 0.5, "lr": 0.1})
        store.finish_run(other, "completed")
        count = export_metrics_csv(store, [str(run_id), "other"], target)
        stored = store.metrics(run_id)
    with target.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert count == len(rows) == len(stored) + 2
    first = rows[0]
    assert first["run_name"] == "tiny-export" and int(first["run_id"]) == run_id
    assert float(first["value"]) == stored[0]["value"]
    assert rows[-1]["name"] == "lr" and float(rows[-1]["value"]) == 0.1


def test_cli_export_and_export_metrics(trained, tmp_path: Path, capsys) -> None:
    db, run_id = trained
    code = main(["export", str(run_id), "--format", "torchscript", "--out",
                 str(tmp_path / "ts"), "--db", str(db)])
    out = capsys.readouterr().out
    assert code == 0
    assert "student.pt" in out and "max |diff|" in out
    assert (tmp_path / "ts" / "student.pt").is_file()
    code = main(["export-metrics", str(run_id), "--out", str(tmp_path / "m.csv"), "--db",
                 str(db)])
    assert code == 0
    assert "metric rows of 1 run(s)" in capsys.readouterr().out
    assert main(["export", "999", "--out", str(tmp_path / "x"), "--db", str(db)]) == 2
    assert "kdstudio: no run '999'" in capsys.readouterr().err
    assert main(["export", str(run_id), "--format", "tflite", "--out", str(tmp_path / "x"),
                 "--db", str(db)]) == 2
    assert "unknown format tflite" in capsys.readouterr().err
    assert main(["export-metrics", "1", "ghost", "--out", str(tmp_path / "m2.csv"),
                 "--db", str(db)]) == 2
    assert "no run 'ghost'" in capsys.readouterr().err


def test_a_format_that_fails_is_reported_not_raised(trained, tmp_path: Path, monkeypatch,
                                                     capsys) -> None:
    from kdstudio.cli import main
    from kdstudio.core import export

    def broken(*_args, **_kwargs):
        raise ImportError("No module named 'onnxscript'")

    monkeypatch.setattr(export, "_write_onnx", broken)
    db, run_id = trained
    code = main(["export", str(run_id), "--db", str(db), "--out", str(tmp_path / "out"),
                 "--format", "safetensors,onnx"])
    assert code == 1
    out, err = capsys.readouterr()
    assert "failed: ImportError No module named 'onnxscript'" in out
    assert "Traceback" not in out + err
    assert (tmp_path / "out" / "student.safetensors").is_file()
    assert not (tmp_path / "out" / "student.onnx").exists()


def test_exported_files_get_the_mode_a_plain_open_gives(exported) -> None:
    _db, _run_id, out, report = exported
    from kdstudio.core.export.formats import current_umask

    expected = 0o666 & ~current_umask()
    modes = {item.path.name: item.path.stat().st_mode & 0o777 for item in report.files
             if item.path.exists()}
    assert "student.safetensors" in modes and "MODEL_CARD.md" in modes
    assert modes == dict.fromkeys(modes, expected)


def test_model_card_states_label_budget_and_transfer_set() -> None:
    from kdstudio.core.export.card import label_budget_text, transfer_set_text

    few = {"label_count": 120, "label_fraction": 1.0, "transfer": "all"}
    assert label_budget_text(few) == ("120 labelled training examples "
                                      "(`data.label_count = 120`)")
    assert transfer_set_text(few) == ("all training inputs (labels unused) "
                                      "(`data.transfer = all`)")
    share = {"label_fraction": 0.05, "transfer": "labelled"}
    assert label_budget_text(share).startswith("5.00% of the training examples are labelled")
    other = {"transfer": "dataset", "transfer_dataset": "digits", "transfer_params": {}}
    assert "`digits`" in transfer_set_text(other)


def test_model_card_of_a_few_label_run_names_its_budget(trained, tmp_path: Path) -> None:
    """A real few-label run: its card says how many labels and which transfer set."""
    db = tmp_path / "history.db"
    few = {**TINY, "name": "few-label", "teacher": {**TINY["teacher"], "epochs": 1},
           "optim": {**TINY["optim"], "epochs": 1},
           "data": {**TINY["data"], "label_count": 30, "transfer": "all"}}
    config, problems = config_from_dict(few)
    assert problems == []
    with Store(db) as store:
        result = run(config, store)
        assert result.status == "completed", result.error
        export_student(store, result.run_id, tmp_path / "out", "safetensors")
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert "- Label budget: 30 labelled training examples (`data.label_count = 30`)" in card
    assert ("- Transfer set (inputs the KD terms use): all training inputs (labels unused)"
            in card)
