"""Prefixed names in a registry, `kdstudio models`, and what a torchvision:/timm: arch says
where the vision extra is not installed (the models themselves: tests/test_vision_models.py)."""

from __future__ import annotations

import importlib.util

import pytest

from kdstudio.cli import main
from kdstudio.core.config import validate
from kdstudio.core.models import count_parameters, create_model, list_models
from kdstudio.core.models.ecosystem import ecosystem_models
from kdstudio.core.registry import Registry, UnknownNameError
from tests.helpers import tiny_config

NO_VISION = not (importlib.util.find_spec("torchvision") or importlib.util.find_spec("timm"))


def test_a_prefix_resolves_a_family_of_names() -> None:
    registry: Registry[str] = Registry("thing")
    registry.register("a")("entry a")

    def resolve(rest: str) -> str:
        if rest != "x":
            raise UnknownNameError(f"fam has no '{rest}'")
        return "entry fam:x"

    registry.register_prefix("fam", resolve)
    assert registry.get("fam:x") == "entry fam:x" and registry.get("a") == "entry a"
    assert "fam:x" in registry and "a" in registry
    assert "fam:y" not in registry and "other:x" not in registry and None not in registry
    with pytest.raises(UnknownNameError, match="fam has no 'y'"):
        registry.get("fam:y")
    with pytest.raises(UnknownNameError, match=r"unknown thing 'b' \(choose from: a, fam:NAME\)"):
        registry.get("b")
    assert registry.names() == ["a"] and registry.prefixes() == ["fam"]
    with pytest.raises(ValueError, match="prefix 'fam:' is registered twice"):
        registry.register_prefix("fam", resolve)


def listed(out: str) -> dict[str, list[str]]:
    """The rows of `kdstudio models`: name -> [parameters, feature layers]."""
    rows = {}
    for line in out.splitlines()[3:]:
        if line.startswith("note: "):
            continue
        name, count, layers = line.split(maxsplit=2)
        rows[name] = [count, layers]
    return rows


@pytest.mark.skipif(not NO_VISION, reason="with the vision extra the list holds 1,400 models "
                    "(minutes to size); tests/test_vision_models.py lists some of those")
def test_models_lists_every_registered_model_with_its_size_and_layers(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("sized for 3x32x32 inputs and 10 classes")
    rows = listed(out)
    assert list(rows) == list_models() + ecosystem_models() == list_models()
    assert rows["custom"] == ["-", '(your own file: params file = "models.py", factory; '
                                   'needs consent)']
    for name in (n for n in list_models() if n != "custom"):
        model = create_model(name, (3, 32, 32), 10)
        assert rows[name] == [f"{count_parameters(model):,}",
                              ", ".join(model.feature_layers())], name


def test_models_filter_is_a_substring_in_any_case(capsys) -> None:
    assert main(["models", "--filter", "ResNet8"]) == 0
    rows = listed(capsys.readouterr().out)
    assert "resnet8x4" in rows and "resnet" not in rows and "cnn" not in rows
    assert all("resnet8" in name.lower() for name in rows)


def test_models_filter_matching_nothing_is_bad_input(capsys) -> None:
    assert main(["models", "--filter", "no-such-net"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[0] == ("kdstudio: --filter: no architecture matches "
                                            "'no-such-net'")


@pytest.mark.skipif(not NO_VISION, reason="torchvision or timm is installed here")
def test_without_the_vision_extra_a_prefixed_arch_says_what_to_install(tmp_path, capsys
                                                                       ) -> None:
    config = tiny_config()
    config.student.arch, config.student.params = "torchvision:resnet18", {}
    config.teacher.arch, config.teacher.params = "timm:resnet10t", {}
    problems = validate(config)
    assert "student.arch: torchvision:resnet18 needs torchvision (pip install kdstudio[vision])" \
        in problems
    assert "teacher.arch: timm:resnet10t needs timm (pip install kdstudio[vision])" in problems
    code = main(["run", "--preset", "digits-kd", "--db", str(tmp_path / "h.db"),
                 "--set", 'teacher.arch="torchvision:resnet18"', "--set", "teacher.params={}"])
    assert code == 2
    err = capsys.readouterr().err
    assert ("kdstudio: teacher.arch: torchvision:resnet18 needs torchvision (pip install "
            "kdstudio[vision])") in err.splitlines()
    assert not (tmp_path / "h.db").exists()
    assert main(["models", "--filter", "resnet8x4"]) == 0
    assert "note: torchvision:NAME needs torchvision (pip install kdstudio[vision])" in \
        capsys.readouterr().out.splitlines()
