"""Model files: weights as safetensors plus a JSON sidecar that says how to rebuild the model."""

from __future__ import annotations

import json
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from kdstudio.core.models import FeatureModel, create_model
from kdstudio.core.models.custom import copy_name
from kdstudio.core.models.opaque import KINDS, program_kind

SPEC_KEY = "kdstudio_spec"


def save_model(model: FeatureModel, folder: Path, stem: str, extra: dict[str, Any] | None = None
               ) -> tuple[Path, Path]:
    """Write `<stem>.safetensors` and `<stem>.json`; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = model.spec() | (extra or {})
    weights = folder / f"{stem}.safetensors"
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(weights), metadata={SPEC_KEY: json.dumps(spec)})
    sidecar = folder / f"{stem}.json"
    sidecar.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return weights, sidecar


ACCEPTED = ("KD Studio loads only state dicts of tensors: a .safetensors file, or a .pt "
            "file written with torch.save(model.state_dict())")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6
PICKLE_MAGIC = b"\x80\x02"  # torch.save's legacy format starts with a pickle


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weight file, told apart by its first bytes, never by its name:
    safetensors, or a torch.save file loaded with weights_only=True. Raises ValueError saying
    in one line what the file is and what is accepted."""
    with path.open("rb") as handle:
        head = handle.read(16)
    if not head:
        raise ValueError(f"cannot read {path}: the file is empty; {ACCEPTED}")
    if _is_safetensors(head):
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise ValueError(f"cannot read {path}: it looks like a safetensors file but its "
                             f"contents do not parse ({_first_line(error)}); it may be "
                             "damaged or cut short") from None
    elif head.startswith(ZIP_MAGIC) and program_kind(path):
        raise ValueError(f"cannot read {path}: it is a {KINDS[program_kind(path) or '']} "
                         "program, not a state dict; set teacher.arch = \"\" to use it as "
                         "an opaque teacher")
    elif head.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
        state = _read_torch_file(path)
    else:
        raise ValueError(f"cannot read {path}: it is neither a safetensors file nor a PyTorch "
                         f"checkpoint (its first bytes match neither format); {ACCEPTED} "
                         "(an ONNX teacher: set teacher.arch = \"\")")
    problem = nonfinite_tensor(state)
    if problem:
        raise ValueError(f"tensor '{problem[0]}' in {path} holds {problem[1]}; the weights must "
                         "be finite numbers")
    return state


def _is_safetensors(head: bytes) -> bool:
    """An 8-byte little-endian header length, then the JSON header's opening brace."""
    return len(head) > 8 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1


def _read_torch_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(_pickled_object_message(path, str(error))) from None
    except Exception as error:  # noqa: BLE001 - a damaged file fails anywhere in the unpickler
        raise ValueError(f"cannot read {path}: it looks like a PyTorch checkpoint but does not "
                         f"load ({type(error).__name__}); it may be damaged or cut short") from None
    if isinstance(loaded, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    tensors_only = isinstance(loaded, dict) and bool(loaded) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    )
    if not tensors_only:
        raise ValueError(f"cannot read {path}: it holds {_described(loaded)}, not a state dict "
                         f"of tensors; {ACCEPTED}")
    return loaded


def _pickled_object_message(path: Path, error: str) -> str:
    """What a file that weights_only loading refused holds, in our words (torch's own message
    suggests loading it unsafely)."""
    found = re.search(r"GLOBAL ([\w.]+)", error)
    if found is None:
        return (f"cannot read {path}: it holds pickled Python objects that are not tensors, "
                f"which KD Studio does not unpickle; {ACCEPTED}")
    name = found.group(1)
    if _is_module_class(name):
        return (f"cannot read {path}: it is a pickled whole model ({name}, written by "
                f"torch.save(model)); {ACCEPTED}")
    return (f"cannot read {path}: it holds a pickled Python object of class {name}, which KD "
            f"Studio does not unpickle (if it is a whole model, save model.state_dict() "
            f"instead); {ACCEPTED}")


def _is_module_class(name: str) -> bool:
    """Whether `name` is an nn.Module subclass of a module already imported (none is
    imported for the question)."""
    module_name, _, attribute = name.rpartition(".")
    found = getattr(sys.modules.get(module_name), attribute, None)
    return isinstance(found, type) and issubclass(found, torch.nn.Module)


def _described(value: Any) -> str:
    if isinstance(value, dict):
        return "an empty dict" if not value else "a dict of other things than tensors"
    return f"a {type(value).__name__}"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def nonfinite_tensor(state: dict[str, torch.Tensor]) -> tuple[str, str] | None:
    """The first floating-point tensor holding NaN or Inf, and which (with a count)."""
    for name, tensor in state.items():
        if not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        nan = int(torch.isnan(tensor).sum())
        inf = int(torch.isinf(tensor).sum())
        if nan or inf:
            kinds = " and ".join(kind for kind, n in (("NaN", nan), ("Inf", inf)) if n)
            return name, f"{kinds} ({nan + inf:,} of {tensor.numel():,} values)"
    return None


def load_weights(model: FeatureModel, path: str | Path, assign: bool = False) -> None:
    """Load a weight file into `model`; raises ValueError naming the mismatch.

    `assign` replaces the model's tensors instead of copying into them (for a model built
    on the meta device).
    """
    file = Path(path).expanduser()
    load_state(model, read_weights(model, file), file, assign)


def read_weights(model: FeatureModel, file: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weight file, keyed as `model` names them; raises ValueError."""
    try:
        state = read_state_dict(file)
    except OSError as error:
        raise ValueError(f"cannot read {file}: {error.strerror or _first_line(error)}") from None
    adapt = getattr(model, "adapt_state", None)
    return adapt(state) if callable(adapt) else state


def load_state(model: FeatureModel, state: dict[str, torch.Tensor], file: Path,
               assign: bool = False, skip: frozenset[str] = frozenset()) -> None:
    """Load `state` (read from `file`) into `model`, every tensor but those in `skip`
    fitting; raises ValueError naming the mismatch."""
    expected = {k: v for k, v in model.state_dict().items() if k not in skip}
    state = {k: v for k, v in state.items() if k not in skip}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:3])}"
                         f"{'...' if len(unexpected) > 3 else ''}")
        if wrong:
            parts.append(f"shape differs for {', '.join(wrong[:3])}")
        raise ValueError(f"{file} does not fit {model.arch} {model.arch_params}: "
                         + "; ".join(parts))
    model.load_state_dict(state, assign=assign, strict=not skip)


def head_layer(model: FeatureModel) -> tuple[str, torch.nn.Linear] | None:
    """The model's head: its last linear layer with one output per class."""
    found = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and module.out_features == model.num_classes:
            found = (name, module)
    return found


def load_teacher_weights(model: FeatureModel, path: str | Path, fine_tune: bool,
                         assign: bool = False) -> str | None:
    """Load a teacher checkpoint. One whose head has another number of outputs is loaded
    without it when `fine_tune` (the model keeps its new head of the right size) and
    refused otherwise. Returns the line saying the head was replaced, else None; raises
    ValueError."""
    file = Path(path).expanduser()
    state = read_weights(model, file)
    head = head_layer(model)
    if head is not None:
        name, layer = head
        weight = state.get(f"{name}.weight")
        if (weight is not None and weight.dim() == 2 and weight.shape[0] != layer.out_features
                and weight.shape[1] == layer.in_features):
            outputs, classes = int(weight.shape[0]), layer.out_features
            if not fine_tune:
                raise ValueError(
                    f"{file} has a head of {outputs} outputs (layer '{name}') and the data "
                    f"has {classes} classes; set teacher.epochs > 0 to fine-tune it with a "
                    f"new {classes}-output head, or give a checkpoint for {classes} classes")
            load_state(model, state, file, assign, frozenset({f"{name}.weight", f"{name}.bias"}))
            return (f"Teacher head replaced: layer '{name}' has {outputs} outputs in "
                    f"{file.name}, the data {classes} classes; a new {classes}-output layer is "
                    "trained with the loaded weights")
    load_state(model, state, file, assign)
    return None


def build_model(spec: dict[str, Any], weights: str | Path) -> FeatureModel:
    """The model a spec (arch, params, input_shape, num_classes) describes, with `weights`.

    Built on the meta device, so rebuilding draws nothing from the global random generator
    (a run training in another thread keeps its exact random sequence) and wastes no time
    initialising weights that are replaced at once.
    """
    spec = _earlier_wide_resnet(spec, Path(weights))
    params = dict(spec["params"])
    digest = spec.get("code_sha256")
    if digest:  # a custom model: the copy of its code kept beside the weights, if any
        copy = Path(weights).parent / "code" / copy_name(str(params.get("file", "")), digest)
        if copy.is_file():
            params["file"] = str(copy)
    with torch.device("meta"):
        model = create_model(spec["arch"], spec["input_shape"], spec["num_classes"], **params)
    if digest and getattr(model, "code_sha256", digest) != digest:
        raise ValueError(f"{params['file']} changed since the model was saved (sha256 "
                         f"{digest[:16]}... then, {model.code_sha256[:16]}... now)")
    load_weights(model, weights, assign=True)
    return model.eval()


# Until 2026-12-02 resnet8x4 and resnet32x4 had a 64-channel stem: exactly `resnet` with
# width 4. Their weights in older histories are rebuilt as that model.
_EARLIER_WIDE_RESNETS = {"resnet8x4": 8, "resnet32x4": 32}


def _earlier_wide_resnet(spec: dict[str, Any], weights: Path) -> dict[str, Any]:
    depth = _EARLIER_WIDE_RESNETS.get(spec["arch"])
    if depth is None or spec.get("params"):
        return spec
    try:
        stem = read_state_dict(weights).get("stem.0.weight")
    except (OSError, ValueError):
        return spec  # load_weights reports the file's problem
    if stem is None or stem.shape[0] != 64:
        return spec
    return {**spec, "arch": "resnet", "params": {"depth": depth, "width": 4}}


def load_model(sidecar: str | Path) -> FeatureModel:
    """Rebuild a model from `<stem>.json` and load `<stem>.safetensors` beside it."""
    sidecar = Path(sidecar)
    spec = json.loads(sidecar.read_text(encoding="utf-8"))
    return build_model(spec, sidecar.with_suffix(".safetensors"))
