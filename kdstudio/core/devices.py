"""Device names: `auto`, `cpu`, `cuda`, `cuda:N`, `mps`."""

from __future__ import annotations

import re

import torch


class DeviceError(ValueError):
    """The asked-for device does not exist on this machine."""


def available_devices() -> list[tuple[str, str]]:
    """(name, human label) of every device present, CPU first."""
    devices = [("cpu", "CPU")]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            devices.append((f"cuda:{index}", f"CUDA {index}: {torch.cuda.get_device_name(index)}"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append(("mps", "Apple MPS"))
    return devices


def resolve_device(name: str) -> torch.device:
    """The torch.device for a name; `auto` picks CUDA, then MPS, then CPU."""
    name = name.strip().lower()
    present = [n for n, _ in available_devices()]
    if name == "auto":
        for candidate in present[1:]:
            return torch.device(candidate)
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        name = "cuda:0"
    if re.fullmatch(r"cuda:\d+|mps", name):
        if name not in present:
            found = ", ".join(present)
            raise DeviceError(f"'{name}' is not available on this machine (found: {found})")
        return torch.device(name)
    raise DeviceError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)")
