"""Mixed precision on CUDA (autocast, with a gradient scaler for float16) and host-to-device
copies from pinned memory. On any other device everything here is a no-op: float32 training,
plain copies."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch

_NO_AUTOCAST = contextlib.nullcontext()  # reusable: it holds no state


@dataclass
class Precision:
    """The precision of one run: `autocast()` around forward passes and losses, `step()` for
    backward + optimiser step (through the scaler when float16 needs one)."""

    device: torch.device
    dtype: torch.dtype | None = None  # None: float32, autocast off
    message: str = ""
    scaler: torch.amp.GradScaler = field(init=False)

    def __post_init__(self) -> None:
        use_scaler = self.dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type if use_scaler else "cpu",
                                           enabled=use_scaler)

    @property
    def enabled(self) -> bool:
        return self.dtype is not None

    @property
    def name(self) -> str:
        return {None: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[self.dtype]

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for the block; a no-op context (made once) in float32."""
        if self.dtype is None:
            return _NO_AUTOCAST
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward and optimiser step; with float16 the loss is scaled and inf steps skipped."""
        if self.scaler.is_enabled():
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            loss.backward()
            optimizer.step()


def bf16_supported(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_bf16_supported()


def resolve_precision(autocast: bool, device: torch.device) -> Precision:
    """bfloat16 autocast on CUDA where the GPU supports it, else float16 with a gradient
    scaler; float32 when autocast is off or the device is not CUDA (with a message saying so).
    """
    if not autocast:
        return Precision(device, None, f"Precision: float32 on {device}")
    if device.type != "cuda":
        return Precision(device, None, f"Autocast requested but off on {device}: it applies to "
                                       "CUDA only; training in float32")
    if bf16_supported(device):
        return Precision(device, torch.bfloat16, f"Autocast on {device}: bfloat16")
    return Precision(device, torch.float16,
                     f"Autocast on {device}: float16 with a gradient scaler (no bfloat16 here)")


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a host tensor to `device`; to CUDA through pinned memory, without blocking."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
