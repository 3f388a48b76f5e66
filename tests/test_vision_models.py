"""torchvision:NAME and timm:NAME models (the vision extra): built for the data, their
discovered feature layers, pretrained-style state dicts, and real runs on an image folder
from the command line (FitNets on a discovered layer) and from the form.

Marked `vision`: `.ci/run` runs them in a venv with torchvision and timm; elsewhere they are
skipped."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.vision
torchvision = pytest.importorskip("torchvision")
timm = pytest.importorskip("timm")

from PIL import Image  # noqa: E402

from kdstudio.cli import main  # noqa: E402
from kdstudio.core.checkpoint import build_model, load_model  # noqa: E402
from kdstudio.core.config import save_toml, validate  # noqa: E402
from kdstudio.core.distill.features import FeatureRecorder  # noqa: E402
from kdstudio.core.models import count_parameters, create_model  # noqa: E402
from kdstudio.core.store import Store  # noqa: E402
from tests.helpers import tiny_config  # noqa: E402

COLOURS = {"red": (200, 20, 30), "green": (20, 180, 40), "blue": (10, 40, 220)}


def image_folder(root: Path, per_class: int = 6, size: int = 32) -> Path:
    """Three classes of noisy solid-colour PNGs."""
    for k, (name, colour) in enumerate(COLOURS.items()):
        for i in range(per_class):
            noise = np.random.default_rng(10 * k + i).integers(-25, 26, (size, size, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels, "RGB").save(root / name / f"{i}.png")
    return root


def vision_config(root: Path, teacher: str, student: str, method: str = "kd"):
    config = tiny_config(method=method)
    config.name = "vision"
    config.data.dataset, config.data.path = "image-folder", str(root)
    config.data.params = {"image_size": [32, 32], "channels": 3}
    config.data.batch_size, config.data.val_fraction, config.data.test_fraction = 4, 0.2, 0.2
    config.teacher.arch, config.teacher.params = teacher, {}
    config.student.arch, config.student.params = student, {}
    config.teacher.epochs = config.optim.epochs = 1
    return config


def test_a_torchvision_model_is_the_package_model_with_the_data_classes_and_channels(
        tmp_path: Path) -> None:
    model = create_model("torchvision:resnet18", (1, 32, 32), 7)
    plain = torchvision.models.resnet18(num_classes=7)
    assert model.conv1.in_channels == 1 and model.fc.out_features == 7
    assert model.spec() == {"arch": "torchvision:resnet18", "params": {},
                            "input_shape": [1, 32, 32], "num_classes": 7}
    # the keys are torchvision's own: a state dict saved from torchvision loads as it is
    assert set(model.state_dict()) == set(plain.state_dict())
    plain.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    torch.save(plain.state_dict(), tmp_path / "resnet18.pt")
    rebuilt = build_model(model.spec(), tmp_path / "resnet18.pt")
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), plain.eval()(x))

    layers = rebuilt.feature_layers()
    assert list(layers) == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "embedding"]
    with torch.no_grad(), FeatureRecorder(layers, layers) as recorder:
        logits = rebuilt(x)
        shapes = {k: tuple(v.shape[1:]) for k, v in recorder.features.items()}
        # 'embedding' is what the head sees: the head maps it to the logits
        assert torch.allclose(rebuilt.fc(recorder.features["embedding"]), logits)
    assert shapes["layer3"] == (256, 2, 2) and shapes["embedding"] == (512,)
    copied = copy.deepcopy(rebuilt)  # its head feeds its own embedding layer, not the original's
    with torch.no_grad(), FeatureRecorder(copied.feature_layers(), ["embedding"]) as recorder:
        copied(x)
        assert torch.allclose(copied.fc(recorder.features["embedding"]), logits)


def test_a_timm_model_takes_the_channels_and_gives_its_stages() -> None:
    model = create_model("timm:test_resnet", (1, 16, 16), 4)
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 4)
    assert list(model.feature_layers()) == ["act1", "layer1", "layer2", "layer3", "layer4",
                                            "embedding"]
    assert count_parameters(model) == count_parameters(
        timm.create_model("test_resnet", num_classes=4, in_chans=1))


def test_bad_names_and_flat_data_are_refused_in_one_line(tmp_path: Path) -> None:
    config = tiny_config()
    config.student.arch, config.student.params = "torchvision:resnet18", {}
    config.teacher.arch, config.teacher.params = "timm:no_such_net", {}
    problems = validate(config)
    assert "student.arch: torchvision:resnet18 needs images shaped (C, H, W); this data " \
           "gives inputs shaped (6,) (pick an image dataset)" in problems
    assert any(p.startswith("teacher.arch: unknown model 'timm:no_such_net': timm has no "
                            "classification model 'no_such_net'") for p in problems)
    config.teacher.arch = "torchvision:resnet19"
    assert any(p.startswith("teacher.arch: unknown model 'torchvision:resnet19'")
               and "did you mean torchvision:resnet18" in p for p in validate(config))


def test_models_command_lists_the_packages_models(capsys) -> None:
    assert main(["models", "--filter", "TORCHVISION:RESNET1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[3:]}
    assert sorted(rows) == ["torchvision:resnet101", "torchvision:resnet152",
                            "torchvision:resnet18"]
    expected = count_parameters(create_model("torchvision:resnet18", (3, 32, 32), 10))
    assert rows["torchvision:resnet18"].split()[1] == f"{expected:,}"
    assert rows["torchvision:resnet18"].endswith(
        "conv1, bn1, layer1, layer2, layer3, layer4, embedding")


def test_cli_run_torchvision_teacher_timm_student_fitnets_on_an_image_folder(
        tmp_path: Path, capsys) -> None:
    root = image_folder(tmp_path / "images")
    config = vision_config(root, "torchvision:resnet18", "timm:test_resnet", "fitnets")
    path = tmp_path / "vision.toml"
    save_toml(config, path)
    db = tmp_path / "history.db"
    assert main(["run", str(path), "--db", str(db), "--quiet",
                 "--set", 'distill.teacher_layer="layer3"',
                 "--set", 'distill.student_layer="layer3"',
                 "--set", "distill.feature_weight=1.0"]) == 0
    with Store(db) as store:
        (row,) = store.list_runs()
        artifacts = {a["kind"]: a["path"] for a in store.artifacts(row["id"])}
        feature_rows = store.metrics(row["id"], name="loss/feature")
    assert row["status"] == "completed"
    assert (row["teacher_arch"], row["student_arch"]) == ("torchvision:resnet18",
                                                          "timm:test_resnet")
    assert row["config"]["distill"]["teacher_layer"] == "layer3"
    assert row["teacher_params"] == count_parameters(
        create_model("torchvision:resnet18", (3, 32, 32), 3))
    for key in ("teacher_test_acc", "baseline_test_acc", "student_test_acc"):
        assert 0.0 <= row[key] <= 1.0
    assert feature_rows and all(np.isfinite(r["value"]) and r["value"] > 0
                                for r in feature_rows)
    # the saved models rebuild from their sidecars, with the package's architecture
    student = load_model(Path(artifacts["student"]).with_suffix(".json"))
    assert student.arch == "timm:test_resnet"
    assert student(torch.rand(2, 3, 32, 32)).shape == (2, 3)
    assert "completed" in capsys.readouterr().out

    out = tmp_path / "exported"
    assert main(["export", str(row["id"]), "--db", str(db), "--out", str(out),
                 "--format", "torchscript"]) == 0
    scripted = torch.jit.load(str(out / "student.pt"))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(scripted(x), student(x), atol=1e-5)


def test_an_imagenet_headed_resnet18_checkpoint_is_fine_tuned_or_refused(
        tmp_path: Path, capsys) -> None:
    """A torchvision resnet18 state dict with its 1000-output ImageNet head: with teacher
    epochs > 0 the head is replaced for the data's 3 classes (the log says so) and the other
    weights are loaded; with epochs = 0 the run is refused before anything trains."""
    root = image_folder(tmp_path / "images")
    imagenet = torchvision.models.resnet18(num_classes=1000)
    checkpoint = tmp_path / "resnet18-imagenet.pt"
    torch.save(imagenet.state_dict(), checkpoint)
    config = vision_config(root, "torchvision:resnet18", "timm:test_resnet")
    config.teacher.checkpoint = str(checkpoint)
    path = tmp_path / "finetune.toml"
    save_toml(config, path)
    db = tmp_path / "history.db"

    assert main(["run", str(path), "--db", str(db), "--set", "teacher.epochs=0"]) == 2
    refused = capsys.readouterr().err
    assert "1000 outputs" in refused and "3 classes" in refused and "teacher" in refused
    assert not db.exists() or Store(db).list_runs() == []

    assert main(["run", str(path), "--db", str(db), "--quiet"]) == 0
    with Store(db) as store:
        (row,) = store.list_runs()
        log = "\n".join(entry["message"] for entry in store.logs(row["id"]))
        teacher_file = {a["kind"]: a["path"] for a in store.artifacts(row["id"])}["teacher"]
    assert row["status"] == "completed"
    assert "head replaced" in log and "'fc'" in log and "1000" in log
    teacher = load_model(Path(teacher_file).with_suffix(".json"))
    trained = teacher.state_dict()
    assert trained["fc.weight"].shape == (3, 512)
    # the backbone started from the checkpoint: its first conv moved only by one epoch
    start = imagenet.state_dict()["conv1.weight"]
    assert (trained["conv1.weight"] - start).abs().max() < 0.5 * start.abs().max()
