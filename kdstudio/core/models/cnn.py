"""Plain convolutional network, 1-D for sequences (C, L) and 2-D for images (C, H, W)."""

from __future__ import annotations

import math

import torch
from torch import nn

from kdstudio.core.models import register_model
from kdstudio.core.models._base import (
    FeatureModel,
    as_channels_first,
    check_positive_ints,
    layers_for,
    reshape_input,
)


class CNN(FeatureModel):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        channels: list[int],
        kernel_size: int,
        global_pool: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.view_shape = as_channels_first(input_shape)
        ndim = len(self.view_shape) - 1
        conv, norm, max_pool, avg_pool = layers_for(ndim)
        in_channels, spatial = self.view_shape[0], list(self.view_shape[1:])
        self.blocks = nn.ModuleList()
        for out_channels in channels:
            block = [conv(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                     norm(out_channels), nn.ReLU()]
            if min(spatial) >= 4:
                block.append(max_pool(2))
                spatial = [s // 2 for s in spatial]
            self.blocks.append(nn.Sequential(*block))
            in_channels = out_channels
        if global_pool:
            self.pool = nn.Sequential(avg_pool(1), nn.Flatten())
            width = in_channels
        else:
            self.pool = nn.Flatten()
            width = in_channels * math.prod(spatial)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = reshape_input(x, self.view_shape)
        for block in self.blocks:
            x = block(x)
        return self.head(self.dropout(self.pool(x)))

    def feature_layers(self) -> dict[str, nn.Module]:
        layers: dict[str, nn.Module] = {f"block{i + 1}": b for i, b in enumerate(self.blocks)}
        layers["embedding"] = self.pool
        return layers


@register_model("cnn")
def cnn(
    input_shape: tuple[int, ...],
    num_classes: int,
    channels: list[int] = [32, 64],  # noqa: B006 - read-only default shown in the form
    kernel_size: int = 3,
    global_pool: bool = False,
    dropout: float = 0.0,
) -> CNN:
    """Conv-BN-ReLU(-MaxPool) blocks, one per entry of `channels`, then a linear head.

    Each block halves the spatial size while it is at least 4. With `global_pool` the head
    sees channel averages; without it, the flattened last feature map.
    """
    if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer (got {kernel_size})")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1) (got {dropout})")
    sizes = check_positive_ints("channels", channels)
    return CNN(input_shape, num_classes, sizes, int(kernel_size), bool(global_pool), float(dropout))
