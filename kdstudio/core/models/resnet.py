"""CIFAR-style ResNet (He et al. 2016, section 4.2): depth 6n+2, three stages of basic blocks.

Stage widths are 16k, 32k and 64k for width multiplier k. `resnet8x4` and `resnet32x4` are
the wide variants of the distillation literature as RepDistiller (CRD) defines them: filters
[32, 64, 128, 256], a 32-channel stem before the three stages, so they have the papers'
parameter counts (1.23M and 7.43M for 100 classes); `resnet` with width 4 has a 64-channel
stem. Works on
images (C, H, W) of any size from 8x8 up, and on sequences (C, L) with 1-D convolutions.
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

DEPTHS = (8, 14, 20, 32, 56, 110)


class BasicBlock(nn.Module):
    def __init__(self, ndim: int, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        conv, norm, _, _ = layers_for(ndim)
        self.conv1 = conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(out_channels)
        self.conv2 = conv(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = norm(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                conv(in_channels, out_channels, 1, stride=stride, bias=False), norm(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(FeatureModel):
    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, depth: int, width: int,
        stem_width: int = 0,
    ) -> None:
        super().__init__()
        self.view_shape = as_channels_first(input_shape)
        ndim = len(self.view_shape) - 1
        conv, norm, _, avg_pool = layers_for(ndim)
        blocks_per_stage = (depth - 2) // 6
        widths = [16 * width, 32 * width, 64 * width]
        stem_width = stem_width or widths[0]
        self.stem = nn.Sequential(
            conv(self.view_shape[0], stem_width, 3, padding=1, bias=False),
            norm(stem_width),
            nn.ReLU(),
        )
        self.layer1, self.layer2, self.layer3 = residual_stages(
            lambda c_in, c_out, stride: BasicBlock(ndim, c_in, c_out, stride), stem_width,
            widths, blocks_per_stage)
        self.pool = nn.Sequential(avg_pool(1), nn.Flatten())
        self.head = nn.Linear(widths[-1], num_classes)
        init_convolutions(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(reshape_input(x, self.view_shape))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.head(self.pool(x))

    def feature_layers(self) -> dict[str, nn.Module]:
        return {
            "stem": self.stem,
            "layer1": self.layer1,
            "layer2": self.layer2,
            "layer3": self.layer3,
            "embedding": self.pool,
        }


def _build(input_shape: tuple[int, ...], num_classes: int, depth: int, width: int,
           stem_width: int = 0) -> ResNet:
    if int(depth) not in DEPTHS:
        raise ValueError(f"depth must be one of {', '.join(map(str, DEPTHS))} (got {depth})")
    if int(width) < 1:
        raise ValueError(f"width must be a positive integer (got {width})")
    return ResNet(input_shape, num_classes, int(depth), int(width), stem_width)


@register_model("resnet")
def resnet(
    input_shape: tuple[int, ...], num_classes: int, depth: int = 20, width: int = 1
) -> ResNet:
    """CIFAR ResNet of `depth` (8, 14, 20, 32, 56, 110) with stage widths multiplied by `width`."""
    return _build(input_shape, num_classes, depth, width)


@register_model("resnet8x4")
def resnet8x4(input_shape: tuple[int, ...], num_classes: int) -> ResNet:
    """ResNet-8 with 4x wider stages (32-channel stem, 64, 128, 256): the usual small student."""
    return _build(input_shape, num_classes, 8, 4, stem_width=32)


@register_model("resnet32x4")
def resnet32x4(input_shape: tuple[int, ...], num_classes: int) -> ResNet:
    """ResNet-32 with 4x wider stages (32-channel stem, 64, 128, 256): the usual large teacher."""
    return _build(input_shape, num_classes, 32, 4, stem_width=32)
