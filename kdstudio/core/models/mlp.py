"""Multi-layer perceptron: flatten, then Linear-ReLU-Dropout blocks, then a linear head."""

from __future__ import annotations

import math

import torch
from torch import nn

from kdstudio.core.models import register_model
from kdstudio.core.models._base import FeatureModel, check_positive_ints


class MLP(FeatureModel):
    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        hidden_sizes: list[int],
        dropout: float,
    ) -> None:
        super().__init__()
        width = math.prod(input_shape)
        self.hidden = nn.ModuleList()
        for size in hidden_sizes:
            block = nn.Sequential(nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout))
            self.hidden.append(block)
            width = size
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for block in self.hidden:
            x = block(x)
        return self.head(x)

    def feature_layers(self) -> dict[str, nn.Module]:
        layers: dict[str, nn.Module] = {f"hidden{i + 1}": b for i, b in enumerate(self.hidden)}
        if self.hidden:
            layers["embedding"] = self.hidden[-1]
        return layers


@register_model("mlp")
def mlp(
    input_shape: tuple[int, ...],
    num_classes: int,
    hidden_sizes: list[int] = [32],  # noqa: B006 - read-only default shown in the form
    dropout: float = 0.0,
) -> MLP:
    """Fully connected network; `hidden_sizes` lists the width of each hidden layer."""
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1) (got {dropout})")
    sizes = check_positive_ints("hidden_sizes", hidden_sizes) if hidden_sizes else []
    return MLP(input_shape, num_classes, sizes, float(dropout))
