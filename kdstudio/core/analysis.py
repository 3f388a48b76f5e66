"""Dark knowledge of a finished run: what the teacher's soft targets carry, and where the
distilled student gains or loses against the student trained alone, class by class."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdstudio.core.checkpoint import load_model
from kdstudio.core.config import config_from_dict
from kdstudio.core.data import Splits, prepare_data
from kdstudio.core.engine import predict
from kdstudio.core.models import FeatureModel
from kdstudio.core.store import Store

MODEL_KINDS = ("teacher", "baseline", "student")


def soft_targets(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """`softmax(z / T)` row by row: the targets KD trains on at temperature T."""
    return torch.softmax(logits / temperature, dim=1)


def mean_soft_target_matrix(logits: torch.Tensor, labels: torch.Tensor, num_classes: int,
                            temperature: float) -> torch.Tensor:
    """Row i: the mean soft-target distribution over the examples whose true class is i.

    Off-diagonal mass shows which classes the model thinks alike. Classes without examples
    get a row of zeros.
    """
    probs = soft_targets(logits, temperature)
    matrix = torch.zeros(num_classes, num_classes)
    matrix.index_add_(0, labels, probs)
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).unsqueeze(1)
    return matrix / counts


def confusion_matrix(logits: torch.Tensor, labels: torch.Tensor, num_classes: int
                     ) -> torch.Tensor:
    """Counts: row = true class, column = predicted class."""
    flat = labels * num_classes + logits.argmax(1)
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor, num_classes: int
                       ) -> torch.Tensor:
    """Accuracy within each true class (NaN for a class without examples)."""
    confusion = confusion_matrix(logits, labels, num_classes).float()
    totals = confusion.sum(1)
    return torch.where(totals > 0, confusion.diag() / totals.clamp(min=1),
                       torch.full_like(totals, float("nan")))


@dataclass
class DarkKnowledge:
    """Everything the dark-knowledge view and `kdstudio show --classes` display."""

    class_names: list[str]
    temperature: float
    x_test: torch.Tensor | None  # None when the run's loader streams it from files
    y_test: torch.Tensor
    logits: dict[str, torch.Tensor]  # test logits per model kind present
    accuracy: dict[str, torch.Tensor]  # per-class test accuracy per model kind

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def soft_matrix(self, kind: str, temperature: float | None = None) -> torch.Tensor:
        return mean_soft_target_matrix(self.logits[kind], self.y_test, self.num_classes,
                                       temperature or self.temperature)

    def example_soft_targets(self, kind: str, index: int, temperature: float) -> torch.Tensor:
        return soft_targets(self.logits[kind][index : index + 1], temperature)[0]

    def class_gain(self) -> torch.Tensor | None:
        """Per-class accuracy of the distilled student minus the student alone."""
        if "student" not in self.accuracy or "baseline" not in self.accuracy:
            return None
        return self.accuracy["student"] - self.accuracy["baseline"]

    def confusion_difference(self) -> torch.Tensor | None:
        """Confusion matrix of the distilled student minus that of the student alone."""
        if "student" not in self.logits or "baseline" not in self.logits:
            return None
        return (confusion_matrix(self.logits["student"], self.y_test, self.num_classes)
                - confusion_matrix(self.logits["baseline"], self.y_test, self.num_classes))


def run_models(store: Store, run_id: int) -> dict[str, FeatureModel]:
    """The saved models of a run, rebuilt from their JSON sidecars and weights."""
    models = {}
    for artifact in store.artifacts(run_id):
        if artifact["kind"] in MODEL_KINDS and artifact["format"] == "safetensors":
            sidecar = store.artifact_file(artifact["path"]).with_suffix(".json")
            if sidecar.is_file():
                models[artifact["kind"]] = load_model(sidecar)
    return models


def run_data(run: dict, loader: str | None = None) -> Splits:
    """The run's data, split and normalised exactly as the run saw it (never augmented),
    read with `loader` (default: the run's `data.loader`)."""
    config, _ = config_from_dict(run["config"])
    d = config.data
    return prepare_data(d.dataset, d.path, d.params, d.val_fraction, config.seed,
                        d.test_fraction, loader or d.loader, "none", d.workers)


def dark_knowledge(store: Store, run_id: int) -> DarkKnowledge:
    """Test-set logits and per-class accuracies of a run's saved models.

    Raises ValueError when the run or its models are missing (e.g. deleted files).
    """
    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"no run {run_id}")
    models = run_models(store, run_id)
    if not models:
        raise ValueError(f"run {run_id} has no saved models (stopped or failed before saving)")
    data = run_data(run)
    logits = {kind: predict(model, data.inputs("test"), torch.device("cpu"))
              for kind, model in models.items()}
    accuracy = {kind: per_class_accuracy(z, data.y_test, data.num_classes)
                for kind, z in logits.items()}
    temperature = float(run["config"].get("distill", {}).get("temperature", 4.0))
    return DarkKnowledge(data.class_names, temperature, data.x_test, data.y_test, logits,
                         accuracy)
