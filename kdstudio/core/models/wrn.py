"""Wide residual networks (Zagoruyko & Komodakis 2016), the CIFAR variant of the distillation
literature (RepDistiller / CRD): WRN-d-k has depth d = 6n + 4, a 16-channel 3x3 stem, three
stages of n pre-activation basic blocks (BN-ReLU-conv, twice) with 16k, 32k and 64k channels,
a 1x1 projection where the width or stride changes, no dropout, and BN-ReLU before the pool.

`wrn40_2` (2.26M parameters for 100 classes) and `wrn16_2` (0.70M) are the usual teacher and
student. Works on images (C, H, W) and on sequences (C, L) with 1-D convolutions.
"""

from __future__ import annotations

import torch
from torch import nn

from kdstudio.core.models import register_model
from kdstudio.core.models._base import (
    FeatureModel,
    as_channels_first,
    init_convolutions,
    layers_for,
    reshape_input,
    residual_stages,
)


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3; the shortcut is the input, or a 1x1 convolution of
    the activated input where the channels or the stride change."""

    def __init__(self, ndim: int, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        conv, norm, _, _ = layers_for(ndim)
        self.bn1 = norm(in_channels)
        self.conv1 = conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm(out_channels)
        self.conv2 = conv(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(activated)
        out = self.conv2(torch.relu(self.bn2(self.conv1(activated))))
        return out + skip


class WideResNet(FeatureModel):
    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, depth: int, width: int
    ) -> None:
        super().__init__()
        self.view_shape = as_channels_first(input_shape)
        ndim = len(self.view_shape) - 1
        conv, norm, _, avg_pool = layers_for(ndim)
        blocks_per_stage = (depth - 4) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.stem = conv(self.view_shape[0], 16, 3, padding=1, bias=False)
        self.layer1, self.layer2, self.layer3 = residual_stages(
            lambda c_in, c_out, stride: PreActBlock(ndim, c_in, c_out, stride), 16, widths,
            blocks_per_stage)
        self.post = nn.Sequential(norm(widths[-1]), nn.ReLU())
        self.pool = nn.Sequential(avg_pool(1), nn.Flatten())
        self.head = nn.Linear(widths[-1], num_classes)
        init_convolutions(self)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(reshape_input(x, self.view_shape))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.head(self.pool(self.post(x)))

    def feature_layers(self) -> dict[str, nn.Module]:
        return {
            "stem": self.stem,
            "layer1": self.layer1,
            "layer2": self.layer2,
            "layer3": self.layer3,
            "embedding": self.pool,
        }


def _build(input_shape: tuple[int, ...], num_classes: int, depth: int, width: int
           ) -> WideResNet:
    if int(depth) < 10 or (int(depth) - 4) % 6:
        raise ValueError(f"depth must be 6n + 4 with n >= 1: 10, 16, 22, 28, 34, 40, ... "
                         f"(got {depth})")
    if int(width) < 1:
        raise ValueError(f"width must be a positive integer (got {width})")
    return WideResNet(input_shape, num_classes, int(depth), int(width))


@register_model("wrn")
def wrn(
    input_shape: tuple[int, ...], num_classes: int, depth: int = 16, width: int = 2
) -> WideResNet:
    """Wide ResNet WRN-depth-width: depth 6n + 4 (10, 16, 22, 28, 40, ...), stages 16k, 32k,
    64k channels for width k."""
    return _build(input_shape, num_classes, depth, width)


@register_model("wrn40_2")
def wrn40_2(input_shape: tuple[int, ...], num_classes: int) -> WideResNet:
    """WRN-40-2 (6 blocks a stage, 32, 64, 128 channels): the usual wide teacher."""
    return _build(input_shape, num_classes, 40, 2)


@register_model("wrn16_2")
def wrn16_2(input_shape: tuple[int, ...], num_classes: int) -> WideResNet:
    """WRN-16-2 (2 blocks a stage, 32, 64, 128 channels): the usual wide student."""
    return _build(input_shape, num_classes, 16, 2)
