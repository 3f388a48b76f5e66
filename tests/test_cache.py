"""Teacher-output cache: same metrics with and without it, its key, reuse, limits, logs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kdstudio.core.distill import cache
from kdstudio.core.distill.features import FeatureRecorder
from kdstudio.core.distill.precision import resolve_precision, to_device
from kdstudio.core.engine import run
from kdstudio.core.events import Log
from kdstudio.core.models import create_model
from kdstudio.core.store import Store
from tests.helpers import tiny_config

CPU = torch.device("cpu")


def _run(tmp_path: Path, name: str, **distill: object) -> tuple[list[tuple], list[str]]:
    config = tiny_config(**distill)
    store = Store(tmp_path / f"{name}.db")
    logs: list[str] = []
    result = run(config, store, lambda e: logs.append(e.message) if isinstance(e, Log) else 0)
    assert result.status == "completed", result.error
    rows = [(r["phase"], r["step"], r["epoch"], r["name"], r["value"])
            for r in store.metrics(result.run_id) if r["name"] != "samples_per_s"]
    store.close()
    return rows, logs


@pytest.mark.parametrize(("method", "extra"), [
    ("kd", {}),
    ("crd", {"feature_weight": 1.0, "params": {"negatives": 16, "feat_dim": 8}}),
    ("fitnets", {"feature_weight": 1.0, "student_layer": "hidden1", "teacher_layer": "hidden1"}),
])
def test_cached_and_uncached_runs_give_identical_metrics(tmp_path: Path, method: str,
                                                         extra: dict) -> None:
    cache.clear()
    cached, cached_logs = _run(tmp_path, "on", method=method, cache_teacher=True, **extra)
    uncached, uncached_logs = _run(tmp_path, "off", method=method, cache_teacher=False, **extra)
    assert len(cached) > 50
    assert cached == uncached  # bit for bit: every loss, accuracy, agreement and KL
    on = [line for line in cached_logs if line.startswith("Teacher-output cache")]
    off = [line for line in uncached_logs if line.startswith("Teacher-output cache")]
    assert len(on) == 1 and on[0].startswith("Teacher-output cache on: logits")
    assert "of 144 training examples computed once in eval mode" in on[0]
    assert off == ["Teacher-output cache off (distill.cache_teacher = false): the teacher runs "
                   "on every batch"]


def test_the_next_run_with_the_same_teacher_and_data_reuses_the_cache(tmp_path: Path) -> None:
    cache.clear()
    first, _ = _run(tmp_path, "a", method="kd")
    second, logs = _run(tmp_path, "b", method="kd")
    assert any("reused from the previous run" in line for line in logs)
    assert first == second


def test_a_cache_above_the_keep_limit_is_let_go_when_the_run_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.clear()
    _run(tmp_path, "small", method="kd")
    kept = cache.kept()
    assert kept is not None and kept.nbytes == 144 * 3 * 4  # 144 examples x 3 logits
    monkeypatch.setattr(cache, "KEEP_BYTES", kept.nbytes - 1)
    cache.clear()
    _, logs = _run(tmp_path, "large", method="kd")
    assert any("computed once in eval mode" in line for line in logs)  # used in the run
    assert cache.kept() is None  # and not kept after it
    _, logs = _run(tmp_path, "again", method="kd")
    assert not any("reused from the previous run" in line for line in logs)


def test_too_big_a_cache_is_not_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.clear()
    monkeypatch.setattr(cache, "MAX_CACHE_BYTES", 1000)
    _, logs = _run(tmp_path, "big", method="kd")
    assert ("Teacher-output cache off: it would take 1.7 kB (limit 1.0 kB); the teacher runs "
            "on every batch") in logs  # 144 examples x 3 logits x 4 bytes


def _teacher() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("cnn", (1, 12), 3, channels=[4, 4]).eval()


def test_lookup_matches_a_forward_pass_on_the_batch() -> None:
    teacher = _teacher()
    x = torch.randn(50, 1, 12, generator=torch.Generator().manual_seed(1))
    names = ["block1", "embedding"]
    with FeatureRecorder(teacher.feature_layers(), names) as recorder:
        built = cache.build_cache(teacher, recorder, x, 7, CPU, resolve_precision(False, CPU),
                                  to_device, "k")
        assert built is not None and built.logits.shape == (50, 3)
        indices = torch.tensor([49, 3, 17, 3])
        logits, features = built.lookup(indices)
        with torch.no_grad():
            expected = teacher(x[indices])
        # a BLAS may round the last bit differently for another batch size (7 vs 4 rows)
        assert torch.allclose(logits, expected, rtol=0, atol=1e-6)
        for name in names:
            assert torch.allclose(features[name], recorder.features[name], rtol=0, atol=1e-6)
    assert built.nbytes == 50 * (3 + 4 * 6 + 4 * 3) * 4


def test_an_interrupted_build_gives_no_cache() -> None:
    teacher = _teacher()
    x = torch.randn(20, 1, 12)
    with FeatureRecorder(teacher.feature_layers(), []) as recorder:
        built = cache.build_cache(teacher, recorder, x, 4, CPU, resolve_precision(False, CPU),
                                  to_device, "k", should_stop=lambda: True)
    assert built is None


def test_key_follows_teacher_weights_data_features_and_precision() -> None:
    teacher = _teacher()
    x = torch.randn(10, 1, 12, generator=torch.Generator().manual_seed(2))
    key = cache.cache_key(teacher, x, ["embedding"], "float32")
    assert key == cache.cache_key(_teacher(), x.clone(), ["embedding"], "float32")
    assert key != cache.cache_key(teacher, x, ["block1"], "float32")
    assert key != cache.cache_key(teacher, x, ["embedding"], "bfloat16")
    changed = x.clone()
    changed[3, 0, 5] += 1e-3
    assert key != cache.cache_key(teacher, changed, ["embedding"], "float32")
    with torch.no_grad():
        next(teacher.parameters())[0].flatten()[0] += 1e-6
    assert key != cache.cache_key(teacher, x, ["embedding"], "float32")
    teacher = _teacher()
    teacher.blocks[0][1].running_mean += 1.0  # buffers count too (BatchNorm statistics)
    assert key != cache.cache_key(teacher, x, ["embedding"], "float32")
