"""Loading the training engine in the background: torch and the registries take seconds to
import, so the window shows first and a task (gui/tasks.py) imports them, then pays the
one-off costs of a first run while the user edits the form."""

from __future__ import annotations

import importlib

from kdstudio.gui.tasks import TaskState

ENGINE_MODULES = ("torch", "kdstudio.core.models", "kdstudio.core.data",
                  "kdstudio.core.distill.methods", "kdstudio.core.engine")


def import_engine(state: TaskState) -> None:
    """Import the engine's modules, report that they are in, then warm up (a task function;
    a cancel, at quit, skips what is left)."""
    for name in ENGINE_MODULES:
        if state.cancelled:
            return
        importlib.import_module(name)
    state.report("imported")
    if not state.cancelled:
        warm_up_engine()


def warm_up_engine() -> None:
    """Pay one-off costs in the background while the user edits the form, not after Start:
    the first torch optimizer of a process imports more of torch (about 2 s here), and the
    first convolutions set up their CPU kernels. Both hold the GIL and would make a first
    run stutter."""
    import torch

    weight = torch.zeros(1, requires_grad=True)
    for optimizer in (torch.optim.Adam([weight]), torch.optim.SGD([weight], lr=0.1)):
        weight.sum().backward()
        optimizer.step()  # the first step and zero_grad import torch._dynamo (and sympy)
        optimizer.zero_grad()
    for conv, shape in ((torch.nn.Conv1d, (2, 1, 8)), (torch.nn.Conv2d, (2, 1, 8, 8))):
        conv(1, 2, 3, padding=1)(torch.zeros(shape)).sum().backward()
