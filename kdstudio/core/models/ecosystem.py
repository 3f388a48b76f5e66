"""Models from torchvision and timm: `arch = "torchvision:NAME"` and `"timm:NAME"`.

Available when the package is installed (`pip install kdstudio[vision]`); a name is resolved
by its prefix in the model registry, so nothing is imported until one is used. The model is
the package's own module, built with the data's classes and input channels and randomly
initialised (nothing is downloaded: pretrained weights come through `teacher.checkpoint`, and
its keys are the package's own, since the model's class is only extended with
`feature_layers`). Feature layers are found in the module tree: timm's `feature_info` stages,
else the top-level children without the head, a container opened into its children while
there are fewer than four; `embedding` is the head's input (averaged over space when it is a
feature map).
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from kdstudio.core.models import MODELS, ModelFactory
from kdstudio.core.models._base import FeatureModel
from kdstudio.core.registry import UnknownNameError

PACKAGES = ("torchvision", "timm")
INSTALL_HINT = "pip install kdstudio[vision]"
MIN_LAYERS = 4  # open containers until there are this many feature layers
# torchvision builders that need a word more to give plain logits at any input size
_TORCHVISION_KWARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


class Embedding(nn.Module):
    """The head's input as one vector per example (a feature map averaged over space)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) if x.dim() == 4 else x.flatten(1)


class EcosystemModel(FeatureModel):
    """Mixed into the class of a torchvision or timm model: its layers by module path."""

    kd_layer_paths: tuple[str, ...] = ()

    def feature_layers(self) -> dict[str, nn.Module]:
        layers = {path: self.get_submodule(path) for path in self.kd_layer_paths}
        layers["embedding"] = self.kd_embedding
        return layers

    def kd_record_embedding(self, _head: nn.Module, args: tuple[Any, ...]) -> None:
        """Forward pre-hook of the head: passes its input through `kd_embedding` (whose
        output the feature hooks record); the head's input is left as it was."""
        if args and isinstance(args[0], torch.Tensor):
            self.kd_embedding(args[0])


@functools.cache
def _feature_class(base: type) -> type:
    """`base` with EcosystemModel mixed in (one class per base, so types compare equal)."""
    return type(base.__name__, (base, EcosystemModel), {"__module__": __name__})


# ---------------------------------------------------------------- packages and names


@functools.cache
def _import(package: str) -> Any:
    """The package module, or the one-line reason it cannot be used."""
    if importlib.util.find_spec(package) is None:
        return f"needs {package} ({INSTALL_HINT})"
    try:
        return importlib.import_module(package)
    except Exception as error:  # noqa: BLE001 - a package built for another torch fails anywhere
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return (f"needs {package}, which is installed but does not import here "
                f"({type(error).__name__}: {reason}); {INSTALL_HINT} beside a torch it supports")


def package_problem(package: str) -> str | None:
    """Why `package` cannot give models here, or None when it can."""
    found = _import(package)
    return found if isinstance(found, str) else None


def package_installed(package: str) -> bool:
    """Whether the package is installed, without importing it (cheap)."""
    return importlib.util.find_spec(package) is not None


@functools.cache
def package_models(package: str) -> tuple[str, ...]:
    """The classification models a package builds, without the prefix (empty when missing)."""
    module = _import(package)
    if isinstance(module, str):
        return ()
    if package == "torchvision":
        from torchvision import models

        return tuple(sorted(models.list_models(module=models)))
    return tuple(module.list_models())


def ecosystem_models() -> list[str]:
    """Every `torchvision:NAME` and `timm:NAME` of the packages installed here."""
    return [f"{package}:{name}" for package in PACKAGES for name in package_models(package)]


def _resolver(package: str) -> Callable[[str], ModelFactory]:
    @functools.cache
    def resolve(name: str) -> ModelFactory:
        arch = f"{package}:{name}"
        problem = package_problem(package)
        if problem:
            raise UnknownNameError(f"{arch} {problem}")
        names = package_models(package)
        if name not in names:
            close = difflib.get_close_matches(name, names, n=3)
            hint = f" (did you mean {', '.join(f'{package}:{c}' for c in close)}?)" if close else ""
            raise UnknownNameError(f"unknown model '{arch}': {package} has no classification "
                                   f"model '{name}'{hint}; `kdstudio models --filter "
                                   f"{package}:` lists them")

        def factory(input_shape: tuple[int, ...], num_classes: int) -> FeatureModel:
            return build(package, name, input_shape, num_classes)

        factory.__doc__ = (f"{name} from {package}, randomly initialised, built for the data's "
                           "classes and channels (pretrained weights: teacher.checkpoint).")
        return factory

    return resolve


for _package in PACKAGES:
    MODELS.register_prefix(_package, _resolver(_package))


# ---------------------------------------------------------------- building


def build(package: str, name: str, input_shape: Sequence[int], num_classes: int
          ) -> FeatureModel:
    """The package's model for images shaped (C, H, W), with its feature layers."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3:
        raise ValueError(f"{package}:{name} needs images shaped (C, H, W); this data gives "
                         f"inputs shaped {shape} (pick an image dataset)")
    model = _package_model(package, name, shape, num_classes)
    head = _head(model) if package == "timm" else _last_child_with_parameters(model)
    paths = _timm_stages(model) if package == "timm" else []
    model.__class__ = _feature_class(type(model))
    model.kd_layer_paths = tuple(paths or _module_frontier(model, head))
    model.kd_embedding = Embedding()
    head.register_forward_pre_hook(model.kd_record_embedding)
    return model


def _package_model(package: str, name: str, shape: tuple[int, int, int], num_classes: int
                   ) -> nn.Module:
    make = _torchvision_model if package == "torchvision" else _timm_model
    try:
        return make(name, shape, num_classes)
    except (NotImplementedError, RuntimeError) as error:
        # a few builders (torchvision's RegNets) compute their widths with tensors, which
        # the meta device cannot read: build on the CPU, without touching the global seed
        if "meta" not in str(error) or torch.get_default_device().type != "meta":
            raise
    with torch.device("cpu"), torch.random.fork_rng(devices=[]):
        model = make(name, shape, num_classes)
    return model.to("meta")


def _torchvision_model(name: str, shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    from torchvision import models

    channels, height, width = shape
    kwargs: dict[str, Any] = {"weights": None, "num_classes": num_classes,
                              **_TORCHVISION_KWARGS.get(name, {})}
    if name.startswith("vit_") and height == width:
        kwargs["image_size"] = height
    if name.startswith("maxvit"):
        kwargs["input_size"] = (height, width)
    model = models.get_model(name, **kwargs)
    if channels != 3:
        _replace_first_conv(model, channels)
    return model


def _timm_model(name: str, shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    import timm

    channels, height, width = shape
    kwargs = {"pretrained": False, "num_classes": num_classes, "in_chans": channels}
    try:  # transformers take the image size; most convolutional networks refuse it
        return timm.create_model(name, img_size=(height, width), **kwargs)
    except TypeError as error:
        if "img_size" not in str(error):
            raise
    return timm.create_model(name, **kwargs)


def _replace_first_conv(model: nn.Module, channels: int) -> None:
    """The first Conv2d (the one that sees the input) with `channels` input channels."""
    for path, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.groups != 1:
                raise ValueError(f"cannot give {type(model).__name__} {channels} input "
                                 "channels: its first convolution is grouped")
            conv = nn.Conv2d(channels, module.out_channels, module.kernel_size, module.stride,
                             module.padding, module.dilation, bias=module.bias is not None,
                             padding_mode=module.padding_mode, device=module.weight.device)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            parent, _, attribute = path.rpartition(".")
            setattr(model.get_submodule(parent), attribute, conv)
            return
    raise ValueError(f"cannot give {type(model).__name__} {channels} input channels: it has "
                     "no 2-D convolution")


def _has_parameters(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _last_child_with_parameters(model: nn.Module) -> nn.Module:
    children = [child for child in model.children() if _has_parameters(child)]
    if not children:
        raise ValueError(f"{type(model).__name__} has no layer with parameters")
    return children[-1]


def _head(model: nn.Module) -> nn.Module:
    """timm's classifier (the first of a distilled model's two), else the last child."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if isinstance(head, (tuple, list)) and head:
        head = head[0]
    if isinstance(head, nn.Module) and _has_parameters(head):
        return head
    return _last_child_with_parameters(model)


def _timm_stages(model: nn.Module) -> list[str]:
    """The module paths of timm's `feature_info` (the stages its feature extractor gives)."""
    info = getattr(model, "feature_info", None)
    if not isinstance(info, list):
        return []
    paths = []
    for entry in info:
        path = entry.get("module") if isinstance(entry, dict) else None
        if isinstance(path, str) and path and path not in paths:
            try:
                model.get_submodule(path)
            except AttributeError:
                continue
            paths.append(path)
    return paths


def _module_frontier(model: nn.Module, head: nn.Module) -> list[str]:
    """Top-level children with parameters, except the one holding the head; the largest
    container among them is opened into its children while there are fewer than four."""
    frontier = [name for name, child in model.named_children()
                if _has_parameters(child) and not any(m is head for m in child.modules())]
    for _ in range(MIN_LAYERS):
        if len(frontier) >= MIN_LAYERS:
            break
        openable = [p for p in frontier
                    if sum(_has_parameters(c) for c in model.get_submodule(p).children()) >= 2]
        if not openable:
            break
        path = max(openable, key=lambda p: _parameter_count(model.get_submodule(p)))
        at = frontier.index(path)
        frontier[at:at + 1] = [f"{path}.{name}" for name, child
                               in model.get_submodule(path).named_children()
                               if _has_parameters(child)]
    return frontier
