"""The autocast run option: a logged no-op on the CPU; the mechanics of its mixed-precision
step checked on the CPU (the CUDA path itself needs a GPU, which the test machines lack)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from kdstudio.core.distill import cache
from kdstudio.core.distill.methods import StepOutputs
from kdstudio.core.distill.methods.kd import HintonKD
from kdstudio.core.distill.precision import Precision, resolve_precision
from kdstudio.core.engine import context, run
from kdstudio.core.events import Event, Log
from kdstudio.core.store import Store
from tests.helpers import tiny_config

CPU = torch.device("cpu")


def test_cpu_precision_is_float32_and_autocast_is_off() -> None:
    plain = resolve_precision(False, CPU)
    asked = resolve_precision(True, CPU)
    for precision in (plain, asked):
        assert not precision.enabled and precision.name == "float32"
        assert not precision.scaler.is_enabled()
        with precision.autocast():
            assert not torch.is_autocast_enabled("cpu")
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert asked.message == ("Autocast requested but off on cpu: it applies to CUDA only; "
                             "training in float32")


def test_autocast_on_cpu_logs_and_changes_nothing(tmp_path: Path) -> None:
    results = {}
    for autocast in (False, True):
        cache.clear()
        config = tiny_config(method="kd")
        config.autocast = autocast
        store = Store(tmp_path / f"{autocast}.db")
        events: list[Event] = []
        result = run(config, store, events.append)
        logs = [e.message for e in events if isinstance(e, Log)]
        assert result.status == "completed"
        results[autocast] = [(r["phase"], r["step"], r["name"], r["value"])
                             for r in store.metrics(result.run_id) if r["name"] != "samples_per_s"]
        assert ("Autocast requested but off on cpu: it applies to CUDA only; training in "
                "float32" in logs) == autocast
        assert config.to_dict()["autocast"] is autocast
    assert results[True] == results[False]


def test_mixed_precision_step_mechanics_on_cpu() -> None:
    # the same code path CUDA takes, with the CPU's bfloat16 autocast and a float16 scaler
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    bf16 = Precision(CPU, torch.bfloat16)
    with bf16.autocast():
        out = model(torch.ones(3, 4))
    assert out.dtype == torch.bfloat16 and bf16.name == "bfloat16"
    before = model.weight.detach().clone()
    bf16.step(out.float().pow(2).mean(), optimizer)
    assert not torch.equal(before, model.weight)

    fp16 = Precision(CPU, torch.float16)
    assert fp16.scaler.is_enabled() and fp16.name == "float16"
    optimizer.zero_grad()
    before = model.weight.detach().clone()
    fp16.step(model(torch.ones(3, 4)).pow(2).mean(), optimizer)
    assert not torch.equal(before, model.weight)  # unscaled gradients were applied


def test_engine_steps_under_autocast_take_the_mixed_precision_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the engine's branch for CUDA autocast, run with the CPU's bfloat16 autocast: forward
    # passes of both models in bfloat16, the losses upcast to float32, the run completes
    monkeypatch.setattr(context, "resolve_precision",
                        lambda _autocast, device: Precision(device, torch.bfloat16, "bf16"))
    seen: list[tuple[torch.dtype, ...]] = []
    loss_parts = HintonKD.loss_parts

    def recording(self: HintonKD, out: StepOutputs, adapters: object) -> dict:
        parts = loss_parts(self, out, adapters)
        assert out.teacher_logits is not None
        seen.append((out.student_logits.dtype, out.teacher_logits.dtype,
                     *(part.dtype for part in parts.values())))
        return parts

    monkeypatch.setattr(HintonKD, "loss_parts", recording)
    config = tiny_config(method="kd", cache_teacher=False)
    store = Store(tmp_path / "bf16.db")
    result = run(config, store)
    assert result.status == "completed", result.error
    assert set(seen) == {(torch.bfloat16, torch.bfloat16, torch.float32, torch.float32)}
    losses = [r["value"] for r in store.metrics(result.run_id, "loss/total", "student")]
    assert len(losses) == len(seen) == 10  # 2 epochs of 5 steps, every one of them
    assert all(math.isfinite(v) for v in losses)
