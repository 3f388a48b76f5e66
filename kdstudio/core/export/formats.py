"""The file formats a student is written in (safetensors + JSON spec, TorchScript, ONNX)
and how the student is rebuilt from its spec."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdstudio.core.export.report import ExportError

if TYPE_CHECKING:
    import torch

    from kdstudio.core.models import FeatureModel

FORMATS = ("safetensors", "torchscript", "onnx")
FILE_NAMES = {"safetensors": "student.safetensors", "torchscript": "student.pt",
              "onnx": "student.onnx"}
SPEC_NAME = "student.json"


def parse_formats(text: str | Iterable[str]) -> list[str]:
    """'all', one format, a comma list or a list of formats -> formats in a fixed order."""
    items = [text] if isinstance(text, str) else list(text)
    names = {part.strip().lower() for item in items for part in item.split(",") if part.strip()}
    if "all" in names:
        return list(FORMATS)
    unknown = sorted(names - set(FORMATS))
    if unknown or not names:
        raise ExportError(f"--format: unknown format {', '.join(unknown) or '(none)'} "
                          f"(choose from: {', '.join(FORMATS)}, all)")
    return [name for name in FORMATS if name in names]


# ---------------------------------------------------------------- loading a run's models


@contextlib.contextmanager
def _quiet_torch() -> Any:
    """Keep exporter chatter (deprecations, registry warnings) off the user's console."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo",
                                                    "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)



def student_description(spec: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The content of student.json: everything needed to rebuild and feed the student."""
    return {
        "arch": spec["arch"],
        "params": spec["params"],
        "input_shape": spec["input_shape"],
        "num_classes": spec["num_classes"],
        "class_names": spec.get("class_names", []),
        "mean": spec.get("mean", []),
        "std": spec.get("std", []),
        "normalisation": "x = (raw - mean) / std, per channel (dimension 1) for inputs shaped "
                         "(C, ...); one mean and std for flat inputs",
        "weights": FILE_NAMES["safetensors"],
        "rebuild": "kdstudio.core.models.create_model(arch, input_shape, num_classes, **params), "
                   "then load_state_dict(safetensors.torch.load_file(weights))",
        "source": {"run_id": run["id"], "run_name": run["name"],
                   "created_at": run["created_at"]},
    }


def rebuild_student(spec_path: str | Path) -> FeatureModel:
    """The student from `student.json` and the `student.safetensors` named in it."""
    from kdstudio.core.checkpoint import build_model

    spec_path = Path(spec_path)
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    return build_model(spec, spec_path.parent / spec.get("weights", FILE_NAMES["safetensors"]))


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def give_user_permissions(path: Path) -> None:
    """The mode a plain open() would give a new file (0o666 less the umask); writers that go
    through a private temporary file leave 0o600 otherwise."""
    os.chmod(path, 0o666 & ~current_umask())


def _write_safetensors(student: FeatureModel, folder: Path, description: dict[str, Any]
                       ) -> list[Path]:
    from safetensors.torch import save_file

    weights = folder / FILE_NAMES["safetensors"]
    state = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}
    save_file(state, str(weights), metadata={"kdstudio_student": json.dumps(description)})
    return [weights]


def _write_torchscript(student: FeatureModel, x: torch.Tensor, folder: Path) -> Path:
    import torch

    path = folder / FILE_NAMES["torchscript"]
    with _quiet_torch():
        traced = torch.jit.trace(student, x[: max(2, min(len(x), 8))], check_trace=False)
        traced.save(str(path))
    return path


def _write_onnx(student: FeatureModel, x: torch.Tensor, folder: Path) -> Path:
    import torch
    from torch.export import Dim

    path = folder / FILE_NAMES["onnx"]
    example = x[:2] if len(x) >= 2 else torch.cat([x, x])[:2]
    with _quiet_torch():
        torch.onnx.export(student, (example,), str(path), dynamo=True, external_data=False,
                          input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: Dim("batch")},), verbose=False)
    return path

