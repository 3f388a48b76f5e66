"""Model registry: names, parameters, shapes, feature layers, parameter counts."""

from __future__ import annotations

import pytest
import torch

from kdstudio.core.models import (
    count_parameters,
    create_model,
    list_models,
    model_defaults,
    model_size_mb,
)
from kdstudio.core.registry import Registry, UnknownNameError


def test_registry_lists_and_rejects_duplicates() -> None:
    registry: Registry[int] = Registry("thing")
    registry.register("b")(2)
    registry.register("a")(1)
    assert registry.names() == ["a", "b"]
    assert registry.get("a") == 1
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a")(3)
    with pytest.raises(UnknownNameError, match=r"unknown thing 'c' \(choose from: a, b\)"):
        registry.get("c")


def test_builtin_models_are_registered() -> None:
    assert {"mlp", "cnn", "resnet", "resnet8x4", "resnet32x4"} <= set(list_models())
    assert model_defaults("mlp") == {"hidden_sizes": [32], "dropout": 0.0}
    assert model_defaults("resnet") == {"depth": 20, "width": 1}


def test_mlp_parameter_count_by_hand() -> None:
    model = create_model("mlp", (64,), 10, hidden_sizes=[32, 16])
    assert count_parameters(model) == (64 * 32 + 32) + (32 * 16 + 16) + (16 * 10 + 10)
    assert model_size_mb(model) == pytest.approx(count_parameters(model) * 4 / 1e6)
    assert list(model.feature_layers()) == ["hidden1", "hidden2", "embedding"]


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet8x4", "resnet32x4"])
def test_models_run_on_image_sizes(name: str, shape: tuple[int, ...]) -> None:
    model = create_model(name, shape, 7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, 7)


def test_cnn_is_one_dimensional_for_sequences() -> None:
    model = create_model("cnn", (1, 40), 10, channels=[4, 8])
    assert isinstance(model.blocks[0][0], torch.nn.Conv1d)
    assert model(torch.randn(3, 1, 40)).shape == (3, 10)
    image_model = create_model("cnn", (1, 8, 8), 10, channels=[4])
    assert isinstance(image_model.blocks[0][0], torch.nn.Conv2d)


def test_resnet_widths_and_depths() -> None:
    wide = create_model("resnet8x4", (3, 32, 32), 100)
    assert wide.layer3[0].conv1.out_channels == 256
    assert len(wide.layer1) == 1
    deep = create_model("resnet32x4", (3, 32, 32), 100)
    assert len(deep.layer1) == 5
    assert count_parameters(deep) > 5 * count_parameters(wide)
    assert list(deep.feature_layers()) == ["stem", "layer1", "layer2", "layer3", "embedding"]
    with pytest.raises(ValueError, match="depth must be one of"):
        create_model("resnet", (1, 8, 8), 10, depth=9)


def test_feature_layers_give_outputs_of_expected_shape() -> None:
    model = create_model("resnet", (1, 28, 28), 10, depth=8, width=1)
    seen = {}
    for name, layer in model.feature_layers().items():
        layer.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out))
    model(torch.randn(2, 1, 28, 28))
    assert seen["layer1"].shape == (2, 16, 28, 28)
    assert seen["layer3"].shape == (2, 64, 7, 7)
    assert seen["embedding"].shape == (2, 64)


def test_unknown_model_parameter_is_named() -> None:
    with pytest.raises(ValueError, match="has no parameter 'width'.*hidden_sizes, dropout"):
        create_model("mlp", (4,), 2, width=3)
    with pytest.raises(ValueError, match="hidden_sizes must be a non-empty list"):
        create_model("mlp", (4,), 2, hidden_sizes=[0])


def test_model_remembers_how_to_rebuild_itself() -> None:
    model = create_model("cnn", (1, 8, 8), 10, channels=[4])
    assert model.spec() == {"arch": "cnn", "params": {"channels": [4]},
                            "input_shape": [1, 8, 8], "num_classes": 10}


@pytest.mark.parametrize(("name", "shape"), [("mlp", (40,)), ("cnn", (40,)), ("cnn", (1, 8, 8)),
                                             ("resnet8x4", (3, 16, 16))])
def test_validation_summary_matches_a_real_forward_and_leaves_the_random_state(
        name: str, shape: tuple[int, ...]) -> None:
    """What validation records of a model: the layers and shapes of a real forward pass,
    taken without a draw from the global generator; a second ask is remembered."""
    from kdstudio.core.distill.checks import summarise_model
    from kdstudio.core.distill.features import FeatureRecorder

    model = create_model(name, shape, 5).eval()
    layers = model.feature_layers()
    with torch.no_grad(), FeatureRecorder(layers, layers) as recorder:
        model(torch.zeros(2, *shape))
        expected = {key: tuple(value.shape[1:]) for key, value in recorder.features.items()}
    state = torch.get_rng_state()
    summary = summarise_model(name, {}, shape, 5)
    assert torch.equal(torch.get_rng_state(), state)
    assert summary.arch == name and summary.layers == tuple(layers)
    assert summary.shapes == expected
    assert summarise_model(name, {}, shape, 5) is summary
