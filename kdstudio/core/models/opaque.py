"""Opaque teachers: `teacher.arch = ""` with `teacher.checkpoint` an ONNX file (run with
onnxruntime on the CPU), a TorchScript file (`torch.jit.load`) or a `torch.export` `.pt2`
file (`torch.export.load`). They give their outputs only: no inner layers, and they are
frozen (never trained here).

The kind of file is told by its contents: a zip archive holding TorchScript's `code/` or
torch.export's `archive_format`; anything else is given to onnxruntime.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdstudio.core.models._base import FeatureModel

KINDS = {"onnx": "ONNX", "torchscript": "TorchScript", "pt2": "torch.export (.pt2)"}
OPAQUE_FILES = "an ONNX file, a TorchScript file or a torch.export .pt2 file"


def program_kind(path: Path) -> str | None:
    """'torchscript' or 'pt2' for a zip archive holding a program, else None."""
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any(name.endswith(("serialized_exported_program.json", "archive_format"))
           for name in names):
        return "pt2"
    if any("/code/" in name or name.endswith("constants.pkl") for name in names):
        return "torchscript"
    return None


def opaque_kind(path: Path) -> str:
    """'torchscript', 'pt2' or 'onnx', from the file's contents."""
    if zipfile.is_zipfile(path):
        kind = program_kind(path)
        if kind is not None:
            return kind
        raise ValueError(f"{path} is a PyTorch zip archive that is neither TorchScript nor "
                         f"torch.export (a state dict needs its teacher.arch); "
                         f"teacher.arch = \"\" takes {OPAQUE_FILES}")
    return "onnx"


class OpaqueTeacher(FeatureModel):
    """A teacher known by its outputs only. Its state holds the file's sha256 (so the
    teacher-output cache tells two files apart) and, for TorchScript and .pt2, the
    program's own weights."""

    def __init__(self, path: Path, kind: str, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.path = path
        self.kind = kind
        self.shape = input_shape
        self.arch = ""
        self.arch_params = {}
        self.input_shape = input_shape
        digest = hashlib.sha256(path.read_bytes()).digest()
        self.sha256 = digest.hex()
        self.register_buffer("file_sha256", torch.tensor(list(digest), dtype=torch.uint8))
        self.program: nn.Module | None = None
        self.session: Any = None
        self.parameter_count = 0
        if kind == "torchscript":
            self.program = torch.jit.load(str(path), map_location="cpu").eval()
        elif kind == "pt2":
            self.program = torch.export.load(str(path)).module()
        else:
            self._open_onnx()
        if self.program is not None:
            for parameter in self.program.parameters():  # a ScriptModule has no requires_grad_
                parameter.requires_grad_(False)
            self.parameter_count = sum(p.numel() for p in self.program.parameters())

    def _open_onnx(self) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ValueError("an ONNX teacher needs onnxruntime: pip install "
                             "'kdstudio[onnx]'") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(torch.get_num_threads(), 1)
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ValueError(f"{self.path} is not {OPAQUE_FILES} that loads ({first})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.parameter_count = _onnx_parameters(self.path)

    def size_mb(self) -> float:
        """Megabytes of its weights (float32 for an ONNX graph's)."""
        if self.program is not None:
            return sum(t.numel() * t.element_size() for t in self.program.state_dict().values()
                       ) / 1e6
        return self.parameter_count * 4 / 1e6

    @property
    def label(self) -> str:
        return f"{KINDS[self.kind]} file {self.path.name}"

    def train(self, mode: bool = True) -> OpaqueTeacher:
        # frozen; an exported program refuses train()/eval() calls
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], *self.shape)
        if self.session is not None:
            feed = {self.input_name: x.detach().float().cpu().numpy()}
            out = self.session.run(None, feed)[0]
            return torch.from_numpy(out).to(x.device)
        assert self.program is not None
        out = self.program(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out

    def feature_layers(self) -> dict[str, nn.Module]:
        return {}

    def spec(self) -> dict[str, Any]:
        return super().spec() | {"opaque": self.kind, "file": str(self.path)}


def _onnx_parameters(path: Path) -> int:
    """The values of an ONNX graph's initializers (0 when the onnx package is missing)."""
    try:
        import onnx
    except ImportError:
        return 0
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # noqa: BLE001 - counting is a nicety
        return 0
    return sum(math.prod(init.dims) for init in graph.initializer)


def load_opaque(file: str | Path, input_shape: tuple[int, ...]) -> OpaqueTeacher:
    """The opaque teacher in `file`; raises ValueError saying in one line what is wrong."""
    path = Path(file).expanduser()
    kind = opaque_kind(path)
    try:
        return OpaqueTeacher(path, kind, tuple(input_shape))
    except ValueError:
        raise
    except Exception as error:  # noqa: BLE001 - torch's loaders raise many types
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"cannot load {path} as {KINDS[kind]}: {first}") from None


def output_problem(teacher: OpaqueTeacher, num_classes: int) -> str | None:
    """Run one batch of two zero inputs: the outputs must be (2, num_classes)."""
    try:
        with torch.no_grad():
            out = teacher(torch.zeros(2, *teacher.shape))
    except Exception as error:  # noqa: BLE001 - a model for other inputs fails anywhere
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return (f"{teacher.path} does not run on inputs shaped {list(teacher.shape)} "
                f"({type(error).__name__}: {first[:200]})")
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return f"{teacher.path} gives outputs shaped {shape}; a teacher gives (batch, classes)"
    if out.shape[1] != num_classes:
        return (f"{teacher.path} gives {out.shape[1]} outputs; the data has {num_classes} "
                "classes")
    return None
