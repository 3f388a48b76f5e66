"""Small configs shared by the tests: tiny models on tiny synthetic data."""

from __future__ import annotations

from kdstudio.core.config import RunConfig


def tiny_config(**distill: object) -> RunConfig:
    """A run of a few dozen steps: 240 synthetic points, MLP 32 -> MLP 8."""
    config = RunConfig(name="tiny", seed=3, device="cpu")
    config.data.dataset = "synthetic"
    config.data.params = {"samples": 240, "dims": 6, "classes": 3, "separation": 1.0}
    config.data.batch_size = 32
    config.data.val_fraction = 0.25
    config.teacher.arch = "mlp"
    config.teacher.params = {"hidden_sizes": [32]}
    config.teacher.epochs = 2
    config.student.arch = "mlp"
    config.student.params = {"hidden_sizes": [8]}
    config.optim.epochs = 2
    config.optim.name, config.optim.lr = "adam", 0.01
    config.distill.ce_weight = config.distill.kd_weight = 1.0
    for key, value in distill.items():
        setattr(config.distill, key, value)
    return config
