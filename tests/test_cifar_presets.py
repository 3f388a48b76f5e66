"""The CIFAR-100 presets with RepDistiller's recipe: their models have the papers' sizes, they
validate once a folder is given, stop with one line without it, and run end to end on small
CIFAR-100 files written here; the multistep schedule drops the lr at its milestones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kdstudio.cli import main
from kdstudio.core.config import load_config
from kdstudio.core.engine import run
from kdstudio.core.models import create_model, model_size
from kdstudio.core.presets import list_presets, load_preset
from kdstudio.core.store import Store
from tests.helpers import tiny_config
from tests.test_cifar import write_py2_pickle

PRESETS = ["cifar100-resnet32x4-resnet8x4", "cifar100-resnet56-resnet20",
           "cifar100-wrn40_2-wrn16_2"]
TRAIN, TEST = 30, 6  # images written (labels 0..29 of the 100): 1 for validation, 29 to train


def cifar100_arrays(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
    return pixels, np.arange(count) % 100


def write_cifar100(folder: Path, version: str) -> Path:
    """A CIFAR-100 folder of TRAIN training and TEST test images, binary or python version."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"class-{i}" for i in range(100)]
    splits = {"train": cifar100_arrays(TRAIN, 1), "test": cifar100_arrays(TEST, 2)}
    for split, (pixels, fine) in splits.items():
        if version == "binary":
            labels = np.stack([fine // 5, fine], 1).astype(np.uint8)
            (folder / f"{split}.bin").write_bytes(np.concatenate([labels, pixels], 1).tobytes())
        else:
            write_py2_pickle(folder / split, {
                b"data": pixels, b"fine_labels": [int(v) for v in fine],
                b"coarse_labels": [int(v) // 5 for v in fine]})
    if version == "binary":
        (folder / "fine_label_names.txt").write_text("\n".join(names) + "\n")
    else:
        write_py2_pickle(folder / "meta", {b"fine_label_names": [n.encode() for n in names]})
    return folder


# parameters for 100 classes in the CRD paper's table (Tian et al. 2020) and RepDistiller
@pytest.mark.parametrize(("arch", "params", "expected"), [
    ("resnet32x4", {}, 7.43e6), ("resnet8x4", {}, 1.23e6),
    ("resnet", {"depth": 56}, 0.86e6), ("resnet", {"depth": 20}, 0.28e6),
    ("wrn40_2", {}, 2.25e6), ("wrn16_2", {}, 0.70e6)])
def test_the_models_have_the_papers_parameter_counts(arch: str, params: dict,
                                                      expected: float) -> None:
    size = model_size(arch, params, (3, 32, 32), 100)
    assert size.parameters == pytest.approx(expected, rel=0.01)
    assert size.layers == ("stem", "layer1", "layer2", "layer3", "embedding")


def test_wrn_stages_blocks_and_depths() -> None:
    model = create_model("wrn16_2", (3, 32, 32), 100)
    seen: dict[str, tuple[int, ...]] = {}
    for name, layer in model.feature_layers().items():
        layer.register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape)))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    assert seen == {"stem": (2, 16, 32, 32), "layer1": (2, 32, 32, 32),
                    "layer2": (2, 64, 16, 16), "layer3": (2, 128, 8, 8), "embedding": (2, 128)}
    assert len(model.layer1) == 2 and len(create_model("wrn40_2", (3, 32, 32), 10).layer3) == 6
    # a 1x1 projection only where the width or the stride changes
    assert [block.shortcut is not None for block in model.layer2] == [True, False]
    wide = create_model("wrn", (1, 40), 5, depth=10, width=3)
    assert wide(torch.randn(2, 1, 40)).shape == (2, 5)
    assert wide.layer3[0].conv1.out_channels == 192
    with pytest.raises(ValueError, match=r"depth must be 6n \+ 4 with n >= 1"):
        create_model("wrn", (3, 32, 32), 10, depth=20)


@pytest.mark.parametrize("name", PRESETS)
def test_the_presets_hold_repdistillers_recipe(tmp_path: Path, name: str) -> None:
    assert name in list_presets()
    data = load_preset(name)
    assert data["data"]["path"] == ""  # left for the user
    data["data"]["path"] = str(write_cifar100(tmp_path / "cifar", "binary"))
    config = load_config(data)
    o, d = config.optim, config.distill
    assert (o.name, o.lr, o.momentum, o.weight_decay, o.epochs) == ("sgd", 0.05, 0.9, 5e-4, 240)
    assert o.nesterov is False
    assert (o.schedule, o.milestones, o.gamma) == ("multistep", [150, 180, 210], 0.1)
    assert (config.data.dataset, config.data.batch_size, config.data.augment) == (
        "cifar100", 64, "crop-flip")
    assert (d.method, d.temperature, d.ce_weight, d.kd_weight) == ("kd", 4.0, 0.1, 0.9)
    assert (config.teacher.epochs, config.teacher.checkpoint, config.teacher.lr) == (240, "", 0)


def test_a_preset_without_its_folder_stops_with_one_line(tmp_path: Path, capsys) -> None:
    db = tmp_path / "h.db"
    assert main(["run", "--preset", PRESETS[0], "--db", str(db), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["kdstudio: data.path: give the folder holding the CIFAR-100 files"]
    assert not db.exists()


@pytest.mark.parametrize(("name", "version"), [(PRESETS[0], "binary"), (PRESETS[1], "python"),
                                               (PRESETS[2], "binary")])
def test_each_preset_runs_end_to_end_on_a_small_cifar100_folder(
        tmp_path: Path, name: str, version: str, capsys) -> None:
    folder = write_cifar100(tmp_path / "cifar", version)
    db = tmp_path / "h.db"
    code = main(["run", "--preset", name, "--db", str(db), "--quiet", "--set",
                 f"data.path={folder}", "--set", "teacher.epochs=1", "--set", "optim.epochs=1"])
    assert code == 0, capsys.readouterr()
    with Store(db) as store:
        (row,) = store.list_runs()
        assert row["status"] == "completed" and row["method"] == "kd"
        for phase in ("teacher", "baseline", "student"):
            assert 0.0 <= row[f"{phase}_test_acc"] <= 1.0, phase
            lrs = {round(m["value"], 12)
                   for m in store.metrics(row["id"], name="lr", phase=phase)}
            assert lrs == {0.05}, phase  # epoch 1 is before the first milestone
        parts = {m["name"] for m in store.metrics(row["id"], phase="student")}
        assert {"loss/ce", "loss/kd"} <= parts
    preset = load_preset(name)
    assert row["config"]["teacher"]["arch"] == preset["teacher"]["arch"]
    assert row["config"]["student"]["arch"] == preset["student"]["arch"]
    assert row["config"]["optim"]["milestones"] == [150, 180, 210]


def test_multistep_drops_the_lr_at_the_milestone_epochs_of_a_run(tmp_path: Path) -> None:
    config = tiny_config()
    config.optim.name, config.optim.lr, config.optim.momentum = "sgd", 0.1, 0.9
    config.optim.schedule, config.optim.milestones, config.optim.gamma = "multistep", [1, 2], 0.5
    config.optim.epochs = config.teacher.epochs = 3
    with Store(tmp_path / "h.db") as store:
        result = run(config, store)
        assert result.status == "completed"
        for phase in ("teacher", "baseline", "student"):
            by_epoch: dict[int, set[float]] = {}
            for m in store.metrics(result.run_id, name="lr", phase=phase):
                by_epoch.setdefault(m["epoch"], set()).add(round(m["value"], 12))
            assert by_epoch == {1: {0.1}, 2: {0.05}, 3: {0.025}}, phase


def test_wide_resnet_weights_of_earlier_versions_still_load(tmp_path: Path) -> None:
    """resnet8x4 weights saved before the 32-channel stem (the layers of `resnet` width 4)
    rebuild as that model and give the same outputs."""
    import json

    from kdstudio.core.checkpoint import build_model, save_model

    torch.manual_seed(0)
    earlier = create_model("resnet", (3, 16, 16), 5, depth=8, width=4).eval()
    save_model(earlier, tmp_path, "student")
    spec = json.loads((tmp_path / "student.json").read_text())
    spec.update(arch="resnet8x4", params={})
    rebuilt = build_model(spec, tmp_path / "student.safetensors")
    x = torch.randn(2, 3, 16, 16)
    assert rebuilt.arch == "resnet" and rebuilt.arch_params == {"depth": 8, "width": 4}
    assert torch.equal(rebuilt(x), earlier(x))
