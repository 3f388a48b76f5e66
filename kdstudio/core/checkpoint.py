"""Model files: weights as safetensors plus a JSON sidecar that says how to rebuild the model."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from kdstudio.core.models import FeatureModel, create_model

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


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Weights from a .safetensors file, or a .pt/.pth file loaded with weights_only=True."""
    if path.suffix == ".safetensors":
        return load_file(str(path))
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    tensors_only = isinstance(loaded, dict) and all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    )
    if not tensors_only:
        raise ValueError(f"{path} holds no state dict of tensors")
    return loaded


def load_weights(model: FeatureModel, path: str | Path, assign: bool = False) -> None:
    """Load a weight file into `model`; raises ValueError naming the mismatch.

    `assign` replaces the model's tensors instead of copying into them (for a model built
    on the meta device).
    """
    file = Path(path).expanduser()
    try:
        state = read_state_dict(file)
    except (OSError, RuntimeError, EOFError, SafetensorError, pickle.UnpicklingError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"cannot read {file}: {reason}") from None
    expected = model.state_dict()
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
    model.load_state_dict(state, assign=assign)


def build_model(spec: dict[str, Any], weights: str | Path) -> FeatureModel:
    """The model a spec (arch, params, input_shape, num_classes) describes, with `weights`.

    Built on the meta device, so rebuilding draws nothing from the global random generator
    (a run training in another thread keeps its exact random sequence) and wastes no time
    initialising weights that are replaced at once.
    """
    with torch.device("meta"):
        model = create_model(spec["arch"], spec["input_shape"], spec["num_classes"],
                             **spec["params"])
    load_weights(model, weights, assign=True)
    return model.eval()


def load_model(sidecar: str | Path) -> FeatureModel:
    """Rebuild a model from `<stem>.json` and load `<stem>.safetensors` beside it."""
    sidecar = Path(sidecar)
    spec = json.loads(sidecar.read_text(encoding="utf-8"))
    return build_model(spec, sidecar.with_suffix(".safetensors"))
