"""Model registry: `@register_model`, `create_model`, `list_models` (timm style).

A model file defines a factory `f(input_shape, num_classes, **params) -> FeatureModel` and
decorates it with `@register_model("name")`; the keyword defaults of the factory are the
model's parameters (the GUI builds its widgets from them, the config validates against them).
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kdstudio.core.models._base import FeatureModel, count_parameters, model_size_mb
from kdstudio.core.registry import Registry, import_submodules

ModelFactory = Callable[..., FeatureModel]
MODELS: Registry[ModelFactory] = Registry("model")
register_model = MODELS.register

__all__ = [
    "FeatureModel",
    "MODELS",
    "ModelSize",
    "count_parameters",
    "create_model",
    "list_models",
    "model_defaults",
    "model_size",
    "model_size_mb",
    "register_model",
]


def list_models() -> list[str]:
    return MODELS.names()


def model_defaults(name: str) -> dict[str, Any]:
    """The parameters a model takes, with their default values."""
    signature = inspect.signature(MODELS.get(name))
    return {
        p.name: p.default
        for p in list(signature.parameters.values())[2:]
        if p.default is not inspect.Parameter.empty
    }


def create_model(
    name: str, input_shape: Sequence[int], num_classes: int, **params: Any
) -> FeatureModel:
    """Build a registered model; it remembers how it was built so it can be rebuilt."""
    factory = MODELS.get(name)
    unknown = sorted(set(params) - set(model_defaults(name)))
    if unknown and not _takes_any_keyword(factory):
        raise ValueError(
            f"model '{name}' has no parameter {', '.join(repr(u) for u in unknown)} "
            f"(it takes: {', '.join(model_defaults(name)) or 'none'})"
        )
    model = factory(tuple(int(s) for s in input_shape), int(num_classes), **params)
    model.arch = name
    model.arch_params = dict(params)
    model.input_shape = tuple(int(s) for s in input_shape)
    model.num_classes = int(num_classes)
    return model


def _takes_any_keyword(factory: ModelFactory) -> bool:
    """Whether a factory passes keywords it does not name on (`**kwargs`: custom models)."""
    return any(p.kind is inspect.Parameter.VAR_KEYWORD
               for p in inspect.signature(factory).parameters.values())


@dataclass(frozen=True)
class ModelSize:
    """What the form shows of a model without building it again: parameter count, size in
    megabytes (parameters and buffers as stored) and the feature layers' names."""

    parameters: int
    size_mb: float
    layers: tuple[str, ...]


def model_size(name: str, params: dict[str, Any], input_shape: Sequence[int],
               num_classes: int) -> ModelSize:
    """The size of a registered model, built once on the meta device (nothing allocated) per
    architecture, parameters, input shape and class count. Raises what `create_model` does."""
    key = json.dumps(params, sort_keys=True, default=repr)
    return _model_size(name, key, tuple(int(s) for s in input_shape), int(num_classes))


@functools.lru_cache(maxsize=64)
def _model_size(name: str, params_json: str, input_shape: tuple[int, ...],
                num_classes: int) -> ModelSize:
    import torch

    with torch.device("meta"):
        model = create_model(name, input_shape, num_classes, **json.loads(params_json))
    return ModelSize(count_parameters(model), model_size_mb(model),
                     tuple(model.feature_layers()))


import_submodules(__name__)
