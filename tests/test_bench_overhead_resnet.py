"""bench/overhead_resnet.py's code path, tiny, on the CPU: the engine and the bare loop do
the same computation (the same final student weights), the figures are finite."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from kdstudio.core.checkpoint import load_weights
from kdstudio.core.models import create_model

BENCH = Path(__file__).resolve().parent.parent / "bench" / "overhead_resnet.py"
TINY = (("resnet", {"depth": 8, "width": 1}), ("resnet", {"depth": 8, "width": 1}))


def bench_module() -> ModuleType:
    name = "overhead_resnet"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> object:
    module = bench_module()
    folder = tmp_path_factory.mktemp("overhead-resnet")
    bench = module.ResNetBench("cpu", 160, 2, folder, TINY)
    yield bench
    bench.store.close()


@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_engine_and_bare_loop_do_the_same_computation(bench: object, precision: str) -> None:
    module = bench_module()
    setting = module.Setting(64, precision, compiled=False)
    row = bench.row(setting, pairs=1)
    assert row["engine_acc"] == row["bare_acc"]
    assert math.isfinite(row["ratio"]) and row["ratio"] > 0
    assert row["precision"] == "float32"  # autocast is CUDA-only in the engine and here
    config = bench.config(setting)
    engine_student = create_model(config.student.arch, bench.data.input_shape,
                                  bench.data.num_classes, **config.student.params)
    load_weights(engine_student, bench.store.artifacts(bench.last_run_id, "student")[0]["path"])
    bare = bench.last_bare.student.state_dict()
    engine = engine_student.state_dict()
    assert bare.keys() == engine.keys()
    for key, value in engine.items():
        torch.testing.assert_close(bare[key], value, rtol=1e-5, atol=1e-6, msg=key)
    # the bare loop's student moved away from its initial weights: there was something to match
    torch.manual_seed(config.seed + 1)
    initial = create_model(config.student.arch, bench.data.input_shape,
                           bench.data.num_classes, **config.student.params).state_dict()
    assert not torch.equal(initial["head.weight"], bare["head.weight"])


def test_bf16_models_are_channels_last(bench: object) -> None:
    module = bench_module()
    config = bench.config(module.Setting(64, "bf16", compiled=False))
    assert config.student.arch == "resnet-channels-last" and config.autocast
    model = create_model(config.student.arch, (3, 32, 32), 10, depth=8, width=1)
    conv = model.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not create_model("resnet", (3, 32, 32), 10, depth=8, width=1).stem[0].weight \
        .is_contiguous(memory_format=torch.channels_last)


def test_speedups_pair_rows_of_the_same_loop() -> None:
    module = bench_module()

    def row(batch: int, precision: str, compiled: bool, rate: float) -> dict[str, object]:
        return {"setting": module.Setting(batch, precision, compiled), "engine_rate": rate,
                "bare_rate": rate / 2}

    ups = module.speedups([row(256, "float32", False, 100.0), row(256, "bf16", False, 150.0),
                           row(256, "float32", True, 120.0)])
    assert [256, "bf16 / float32 (eager)", "**1.50x**", "1.50x"] in ups
    assert [256, "compiled / eager (float32)", "**1.20x**", "1.20x"] in ups
    assert len(ups) == 2
