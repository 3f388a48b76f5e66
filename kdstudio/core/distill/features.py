"""Capture the outputs of named layers with forward hooks, without touching the model code."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


class FeatureRecorder:
    """Records the output of each named feature layer on every forward pass.

    `recorder.features[name]` holds the latest output. Use `close()` (or `with`) to remove
    the hooks, so a recorded model can be exported clean.
    """

    def __init__(self, layers: dict[str, nn.Module], names: Iterable[str]) -> None:
        self.features: dict[str, torch.Tensor] = {}
        self._handles: list[RemovableHandle] = []
        for name in dict.fromkeys(names):
            if name not in layers:
                raise KeyError(f"no feature layer '{name}' (has: {', '.join(layers)})")
            self._handles.append(layers[name].register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def store(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            self.features[name] = output

        return store

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.features.clear()

    def __enter__(self) -> FeatureRecorder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
