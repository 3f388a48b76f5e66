"""The base class every registered model derives from, and small helpers."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn


class FeatureModel(nn.Module):
    """An `nn.Module` that names the layers whose outputs hint-based methods may use.

    `create_model` fills `arch`, `arch_params`, `input_shape` and `num_classes`, which is
    everything needed to rebuild the model from a checkpoint.
    """

    arch: str = ""
    arch_params: dict[str, Any]
    input_shape: tuple[int, ...] = ()
    num_classes: int = 0

    @abstractmethod
    def feature_layers(self) -> dict[str, nn.Module]:
        """Named layers, input to output; 'embedding' is the representation before the head."""

    def spec(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "params": dict(self.arch_params),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
        }


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_size_mb(model: nn.Module) -> float:
    """Size of the parameters and buffers in megabytes (as stored, float32 = 4 bytes)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


ModuleType = type[nn.Module]


def layers_for(ndim: int) -> tuple[ModuleType, ModuleType, ModuleType, ModuleType]:
    """Conv, BatchNorm, MaxPool and AdaptiveAvgPool classes for 1-D or 2-D inputs."""
    if ndim == 1:
        return nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d, nn.AdaptiveAvgPool1d
    return nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d


def as_channels_first(input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Convolutional models see a flat vector of length L as one channel of length L."""
    if len(input_shape) == 1:
        return (1, input_shape[0])
    if len(input_shape) in (2, 3):
        return input_shape
    raise ValueError(f"needs input shaped (L,), (C, L) or (C, H, W); got {input_shape}")


def residual_stages(make_block: Callable[[int, int, int], nn.Module], in_channels: int,
                    widths: Sequence[int], blocks_per_stage: int) -> list[nn.Sequential]:
    """Stages of `blocks_per_stage` residual blocks `make_block(in, out, stride)`, one stage
    per width; every stage after the first starts by halving the resolution (stride 2)."""
    stages = []
    for index, out_channels in enumerate(widths):
        blocks = []
        for block_index in range(blocks_per_stage):
            stride = 2 if index > 0 and block_index == 0 else 1
            blocks.append(make_block(in_channels, out_channels, stride))
            in_channels = out_channels
        stages.append(nn.Sequential(*blocks))
    return stages


def init_convolutions(model: nn.Module) -> None:
    """He initialisation (fan out) of every convolution, as the ResNet papers do."""
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")


def check_positive_ints(name: str, values: Any) -> list[int]:
    values = [values] if isinstance(values, int) else list(values)
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v <= 0 for v in values):
        raise ValueError(f"{name} must be a non-empty list of positive integers (got {values})")
    return values


def reshape_input(x: torch.Tensor, input_shape: tuple[int, ...]) -> torch.Tensor:
    return x.reshape(x.shape[0], *input_shape)
