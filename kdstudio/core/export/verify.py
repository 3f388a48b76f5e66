"""Checking an export: real inputs of the run's data, each written file reloaded and run
against the student, and CPU latency."""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdstudio.core.export.formats import SPEC_NAME, _quiet_torch, rebuild_student
from kdstudio.core.export.report import ExportError

if TYPE_CHECKING:
    import torch

CHECK_SAMPLES = 256
LATENCY_BUDGET_S = 0.4


def real_inputs(run: dict[str, Any], input_shape: list[int], count: int
                ) -> tuple[torch.Tensor, str]:
    """Up to `count` normalised test inputs of the run's dataset, and where they came from.

    When the data cannot be prepared again (a file dataset moved away), the check falls
    back to standard-normal inputs, which is what normalised data looks like, and says so.
    """
    import torch

    from kdstudio.core.analysis import run_data

    dataset = run["config"].get("data", {}).get("dataset", "?")
    try:
        splits = run_data(run, loader="stream")  # decodes only the inputs it takes
    except Exception as error:  # noqa: BLE001 - any data failure falls back, and says why
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(count, *input_shape, generator=generator)
        return x, f"{count} standard-normal inputs (the {dataset} data could not be " \
                  f"prepared again: {error})"
    if list(splits.input_shape) != list(input_shape):
        raise ExportError(f"the {dataset} data now has inputs shaped "
                          f"{list(splits.input_shape)}, the student expects {input_shape}")
    source = splits.inputs("test" if len(splits.y_test) else "val")
    x = source.head(count).clone()
    return x, f"{len(x)} real test inputs of {dataset}"


def measure_latency_ms(model: torch.nn.Module, batch: torch.Tensor,
                       budget_s: float = LATENCY_BUDGET_S) -> float:
    """Median single-thread CPU time of one forward pass on `batch`, in milliseconds.

    One thread, because on a shared machine a busy core stalls a multi-threaded forward pass
    for a whole scheduler tick, which would measure the neighbours rather than the model.
    """
    import torch

    model = model.cpu().eval()
    times: list[float] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for _ in range(3):
                model(batch)
            started = time.perf_counter()
            while len(times) < 5 or (time.perf_counter() - started < budget_s
                                     and len(times) < 200):
                begin = time.perf_counter()
                model(batch)
                times.append(time.perf_counter() - begin)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times) * 1000.0


def _latency_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    import torch

    if len(x) >= size:
        return x[:size].contiguous()
    repeats = math.ceil(size / max(len(x), 1))
    return torch.cat([x] * repeats)[:size].contiguous()


def _max_diff(expected: torch.Tensor, got: Any) -> float:
    import torch

    got_tensor = torch.as_tensor(got, dtype=torch.float32)
    if got_tensor.shape != expected.shape:
        return math.inf
    return float((got_tensor - expected).abs().max()) if expected.numel() else 0.0


def _tolerance(expected: torch.Tensor) -> float:
    """1e-5, relaxed in proportion for logits much larger than 1."""
    scale = float(expected.abs().max()) if expected.numel() else 1.0
    return 1e-5 * max(1.0, scale)


def _check(fmt: str, path: Path, folder: Path, x: torch.Tensor, expected: torch.Tensor
           ) -> tuple[float | None, str]:
    """Reload an exported file, run it on `x`; (max abs difference, what ran it)."""
    import torch

    if fmt == "safetensors":
        with torch.no_grad():
            got = rebuild_student(folder / SPEC_NAME)(x)
        return _max_diff(expected, got), "rebuilt from student.json + student.safetensors"
    if fmt == "torchscript":
        with _quiet_torch(), torch.no_grad():
            got = torch.jit.load(str(path), map_location="cpu")(x)
        return _max_diff(expected, got), "torch.jit.load"
    try:
        import onnxruntime
    except ImportError:
        import onnx

        onnx.checker.check_model(str(path))
        return None, "onnx.checker passed; onnxruntime is not installed, outputs not compared"
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # no spinning worker threads left behind after the check
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    return _max_diff(expected, got), f"onnxruntime {onnxruntime.__version__}"

