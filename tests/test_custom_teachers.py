"""Custom models from the user's file (imported only with consent), opaque teachers (ONNX,
TorchScript, torch.export), a checkpoint with another head, and the teacher's test figure."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from kdstudio.cli import main
from kdstudio.core.checkpoint import load_model
from kdstudio.core.config import ConfigError, save_toml, validate
from kdstudio.core.engine import run
from kdstudio.core.events import Epoch, Log
from kdstudio.core.export import rebuild_student
from kdstudio.core.models import create_model
from kdstudio.core.models.custom import forget_trust, trust
from kdstudio.core.store import Store
from tests.helpers import tiny_config

MODELS_PY = '''\
# {tag}
import pathlib
from torch import nn

pathlib.Path(__file__).with_name("imported.marker").write_text("imported")


def make(num_classes, input_shape, width=16):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], width), nn.ReLU(),
                         nn.Linear(width, num_classes))


class Small(nn.Module):
    def __init__(self, num_classes, dims):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dims, 8), nn.ReLU())
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.head(self.body(x))

    def feature_layers(self):
        return {{"embedding": self.body}}


def make_small(num_classes, input_shape):
    return Small(num_classes, input_shape[0])
'''


@pytest.fixture(autouse=True)
def _no_trust():
    forget_trust()
    yield
    forget_trust()


def write_models(folder: Path) -> Path:
    """The user's file; its content is unique to the test (consent and imports go by hash)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "models.py"
    path.write_text(MODELS_PY.format(tag=folder), encoding="utf-8")
    return path


def custom_config(models: Path, student: bool = True):
    config = tiny_config()
    config.teacher.arch = "custom"
    config.teacher.params = {"file": str(models), "factory": "make", "width": 24}
    if student:
        config.student.arch = "custom"
        config.student.params = {"file": str(models), "factory": "make_small"}
    return config


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_refuses_custom_code_without_consent_and_imports_nothing(tmp_path: Path,
                                                                     capsys) -> None:
    models = write_models(tmp_path / "user")
    config_file = tmp_path / "custom.toml"
    save_toml(custom_config(models), config_file)
    db = tmp_path / "h.db"
    assert main(["run", str(config_file), "--db", str(db)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    expected = (f"kdstudio: {{}}.params.file: {models} (sha256 {sha256(models)}) is Python "
                "code that KD Studio imports only with your consent; pass --trust-code to "
                "run it")
    assert lines == [expected.format("student"), expected.format("teacher")]
    assert not (models.parent / "imported.marker").exists()
    assert not db.exists()


def test_cli_trust_code_runs_and_keeps_the_code_with_the_run(tmp_path: Path, capsys) -> None:
    models = write_models(tmp_path / "user")
    config_file = tmp_path / "custom.toml"
    save_toml(custom_config(models), config_file)
    db = tmp_path / "h.db"
    assert main(["run", str(config_file), "--db", str(db), "--trust-code"]) == 0
    out = capsys.readouterr().out
    assert (models.parent / "imported.marker").read_text() == "imported"
    assert f"Teacher code {models} (sha256 {sha256(models)}) is kept with the run" in out
    assert "\nTeacher test accuracy " in out  # printed before the students train
    assert out.index("Teacher test accuracy") < out.index("[baseline] epoch")
    with Store(db) as store:
        code = store.artifacts(1, "code")
        assert {row["meta"]["role"] for row in code} == {"teacher", "student"}
        assert {row["sha256"] for row in code} == {sha256(models)}
        assert Path(code[0]["path"]).read_bytes() == models.read_bytes()
        summary = store.get_run(1)["summary"]
    assert summary["student_params"] == 6 * 8 + 8 + 8 * 3 + 3
    assert summary["teacher_params"] == 6 * 24 + 24 + 24 * 3 + 3
    # the saved student is exported from the run's copy of the code (the original is gone),
    # with its code beside it, again only with consent
    models.unlink()
    forget_trust()
    out = tmp_path / "exported"
    export = ["export", "1", "--db", str(db), "--out", str(out), "--format", "safetensors"]
    assert main(export) == 2
    assert not out.exists()
    assert main([*export, "--trust-code"]) == 0
    student = rebuild_student(out / "student.json")
    assert set(student.feature_layers()) == {"body", "head", "embedding"}
    assert student.code_sha256 == hashlib.sha256(next((out / "code").iterdir()).read_bytes()
                                                 ).hexdigest()


def test_custom_run_resumes_from_its_copy_only_with_consent(tmp_path: Path, capsys) -> None:
    models = write_models(tmp_path / "user")
    config = custom_config(models, student=False)
    config.optim.epochs = 3
    db = tmp_path / "h.db"
    epochs = []

    def on_event(event: object) -> None:
        if isinstance(event, Epoch) and event.phase == "student":
            epochs.append(event.epoch)

    trust([sha256(models)])
    with Store(db) as store:
        result = run(config, store, on_event, lambda: len(epochs) >= 1)
    assert result.status == "stopped"
    forget_trust()
    models.unlink()  # the run goes on with the copy it kept
    assert main(["resume", str(result.run_id), "--db", str(db)]) == 2
    assert "pass --trust-code" in capsys.readouterr().err
    assert main(["resume", str(result.run_id), "--db", str(db), "--trust-code", "--quiet"]) == 0
    with Store(db) as store:
        assert store.get_run(result.run_id)["status"] == "completed"


def test_validation_names_the_file_and_imports_nothing_without_consent(tmp_path: Path) -> None:
    models = write_models(tmp_path / "user")
    config = custom_config(models, student=False)
    problems = validate(config)
    assert [p.split(":")[0] for p in problems] == ["teacher.params.file"]
    assert validate(config, asks_consent=True) == []
    assert not (models.parent / "imported.marker").exists()
    config.teacher.params["file"] = str(tmp_path / "none.py")
    assert validate(config, asks_consent=True)[0].startswith(
        f"teacher.params.file: cannot read {tmp_path / 'none.py'}")


# ---------------------------------------------------------------- opaque teachers


@pytest.fixture(scope="module")
def trained_teacher(tmp_path_factory: pytest.TempPathFactory):
    """A run whose MLP teacher trains here: its model and test accuracy."""
    folder = tmp_path_factory.mktemp("teacher")
    with Store(folder / "h.db") as store:
        result = run(tiny_config(), store)
        sidecar = Path(next(a["path"] for a in store.artifacts(result.run_id, "teacher")
                            if a["format"] == "safetensors")).with_suffix(".json")
    return load_model(sidecar), result.summary["teacher_test_acc"], folder


def write_opaque(model: nn.Module, kind: str, folder: Path) -> Path:
    sample = torch.zeros(2, 6)
    if kind == "torchscript":
        path = folder / "teacher.ts"
        torch.jit.trace(model, sample).save(str(path))
    elif kind == "pt2":
        path = folder / "teacher.pt2"
        batch = torch.export.Dim("batch")
        torch.export.save(torch.export.export(model, (sample,),
                                              dynamic_shapes=({0: batch},)), str(path))
    else:
        path = folder / "teacher.onnx"
        with warnings.catch_warnings():  # the legacy exporter: fast, and says it is legacy
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (sample,), str(path), dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}})
    return path


@pytest.mark.parametrize("kind", ["onnx", "torchscript", "pt2"])
def test_opaque_teacher_distils_and_scores_as_the_torch_model(trained_teacher, kind: str,
                                                              tmp_path: Path) -> None:
    model, torch_acc, _folder = trained_teacher
    config = tiny_config()
    config.teacher.arch, config.teacher.params, config.teacher.epochs = "", {}, 0
    config.teacher.checkpoint = str(write_opaque(model, kind, tmp_path))
    events: list[object] = []
    with Store(tmp_path / "h.db") as store:
        result = run(config, store, events.append)
        teacher_files = store.artifacts(result.run_id, "teacher")
    assert result.status == "completed", result.error
    assert result.summary["teacher_test_acc"] == torch_acc
    assert result.summary["teacher_params"] == 6 * 32 + 32 + 32 * 3 + 3
    assert [(a["format"], Path(a["path"]).read_bytes()) for a in teacher_files] == [
        (kind, Path(config.teacher.checkpoint).read_bytes())]
    messages = [e.message for e in events if isinstance(e, Log)]
    assert f"Teacher test accuracy {torch_acc:.2%}" in messages
    assert any(m.startswith("Teacher: ") and "frozen, its outputs only" in m for m in messages)


def test_opaque_teacher_refuses_feature_methods_training_and_other_classes(
        trained_teacher, tmp_path: Path) -> None:
    model, _acc, _folder = trained_teacher
    config = tiny_config(method="fitnets", student_layer="hidden1", teacher_layer="hidden1",
                         feature_weight=1.0)
    config.teacher.arch, config.teacher.params = "", {}
    config.teacher.checkpoint = str(write_opaque(model, "onnx", tmp_path))
    assert validate(config) == [
        "teacher.epochs: an opaque teacher (ONNX file) is used as it is, never trained: set "
        "teacher.epochs = 0 (got 2)",
        "distill.method: fitnets needs the teacher's inner layers; an ONNX teacher gives "
        "only its outputs"]
    config.distill.method, config.teacher.epochs = "kd", 0
    program = write_opaque(model, "torchscript", tmp_path)
    config.teacher.arch, config.teacher.checkpoint = "mlp", str(program)
    assert validate(config) == [f"teacher.checkpoint: cannot read {program}: it is a "
                                "TorchScript program, not a state dict; set teacher.arch = \"\" "
                                "to use it as an opaque teacher"]
    config.teacher.arch, config.teacher.checkpoint = "", str(tmp_path / "teacher.onnx")
    config.data.params["classes"] = 4
    assert validate(config) == [f"teacher.checkpoint: {config.teacher.checkpoint} gives 3 "
                                "outputs; the data has 4 classes"]


# ---------------------------------------------------------------- another head


def test_checkpoint_with_another_head_is_refused_frozen_and_fine_tuned_with_epochs(
        tmp_path: Path) -> None:
    other = create_model("mlp", (6,), 7, hidden_sizes=[32])
    checkpoint = tmp_path / "seven.pt"
    torch.save(other.state_dict(), checkpoint)
    config = tiny_config()
    config.teacher.checkpoint, config.teacher.epochs = str(checkpoint), 0
    assert validate(config) == [
        f"teacher.checkpoint: {checkpoint} has a head of 7 outputs (layer 'head') and the "
        "data has 3 classes; set teacher.epochs > 0 to fine-tune it with a new 3-output head, "
        "or give a checkpoint for 3 classes"]
    config.teacher.epochs = 2
    assert validate(config) == []
    events: list[object] = []
    with Store(tmp_path / "h.db") as store:
        result = run(config, store, events.append)
        plan = store.get_run(result.run_id)["plan"]
        weights = next(a["path"] for a in store.artifacts(result.run_id, "teacher"))
    assert result.status == "completed", result.error
    assert plan[0]["name"] == "teacher" and plan[0]["epochs"] == 2
    messages = [e.message for e in events if isinstance(e, Log)]
    assert ("Teacher head replaced: layer 'head' has 7 outputs in seven.pt, the data 3 "
            "classes; a new 3-output layer is trained with the loaded weights; fine-tuned for "
            "2 epochs") in messages
    teacher = load_model(Path(weights).with_suffix(".json"))
    assert teacher.head.weight.shape == (3, 32)
    assert [e.epoch for e in events if isinstance(e, Epoch) and e.phase == "teacher"] == [1, 2]


def test_loaded_teacher_is_tested_before_the_students_train(trained_teacher,
                                                            tmp_path: Path) -> None:
    _model, torch_acc, folder = trained_teacher
    config = tiny_config()
    config.teacher.checkpoint = str(folder / "h-artifacts" / "run-1" / "teacher.safetensors")
    events: list[object] = []
    with Store(tmp_path / "h.db") as store:
        result = run(config, store, events.append)
    assert result.summary["teacher_test_acc"] == torch_acc
    order = [("test" if isinstance(e, Log) and e.message.startswith("Teacher test accuracy")
              else e.phase) for e in events
             if (isinstance(e, Log) and e.message.startswith("Teacher test accuracy"))
             or (isinstance(e, Epoch) and e.phase != "teacher")]
    assert order[0] == "test" and order.count("test") == 1 and len(order) == 5


def test_untrusted_custom_model_is_a_config_error_in_the_engine(tmp_path: Path) -> None:
    models = write_models(tmp_path / "user")
    with Store(tmp_path / "h.db") as store, pytest.raises(ConfigError) as raised:
        run(custom_config(models, student=False), store)
    assert raised.value.problems[0].startswith(f"teacher.params.file: {models} (sha256 ")
    assert not (models.parent / "imported.marker").exists()


def test_a_trusted_file_that_fails_is_one_line_naming_it(tmp_path: Path) -> None:
    models = write_models(tmp_path / "user")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    trust([sha256(models), sha256(broken)])
    config = custom_config(models, student=False)
    config.teacher.params["factory"] = "nope"
    assert validate(config) == [f"teacher.params: factory: {models} has no function 'nope'"]
    config.teacher.params = {"file": str(broken)}
    assert validate(config) == [f"teacher.params: importing {broken} failed: RuntimeError: boom"]
    config.teacher.params = {"file": str(models), "factory": "make", "depth": 3}
    assert validate(config) == ["teacher.params: factory: make() in models.py failed: "
                                "TypeError: make() got an unexpected keyword argument 'depth'"]
    imagenet = tmp_path / "imagenet.py"
    imagenet.write_text("from torch import nn\n\n\ndef make(num_classes, input_shape):\n"
                        "    return nn.Linear(input_shape[0], 1000)\n", encoding="utf-8")
    trust([sha256(imagenet)])
    config.teacher.params = {"file": str(imagenet)}
    assert validate(config) == ["teacher.params: the model gives outputs shaped [2, 1000] for "
                                "a batch of 2; the data has 3 classes"]
