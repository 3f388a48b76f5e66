"""The autocast run option: a logged no-op on the CPU; the mechanics of its mixed-precision
step checked on the CPU (the CUDA path itself needs a GPU, which the test machines lack)."""

from __future__ import annotations

from pathlib import Path

import torch

from kdstudio.core.distill import cache
from kdstudio.core.distill.precision import Precision, resolve_precision
from kdstudio.core.engine import run
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
        events: list[dict] = []
        result = run(config, store, events.append)
        logs = [e["message"] for e in events if e["type"] == "log"]
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
