"""Dark-knowledge analysis: soft-target matrices, confusion, per-class gains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kdstudio.core.analysis import (
    confusion_matrix,
    dark_knowledge,
    mean_soft_target_matrix,
    per_class_accuracy,
)
from kdstudio.core.engine import run
from kdstudio.core.store import Store
from tests.helpers import tiny_config


def test_soft_target_matrix_by_hand() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    matrix = mean_soft_target_matrix(logits, labels, 3, temperature=1.0)
    e2 = torch.exp(torch.tensor(2.0))
    expected_row0 = (torch.tensor([1 / 3, 1 / 3, 1 / 3]) + torch.tensor([e2, 1, 1]) / (e2 + 2)) / 2
    assert torch.allclose(matrix[0], expected_row0)
    e1 = torch.exp(torch.tensor(1.0))
    assert torch.allclose(matrix[1], torch.tensor([1, e1, 1]) / (e1 + 2))
    assert torch.equal(matrix[2], torch.zeros(3))  # no example of class 2
    hot = mean_soft_target_matrix(logits, labels, 3, temperature=100.0)
    assert torch.allclose(hot[:2], torch.full((2, 3), 1 / 3), atol=0.01)  # T -> inf: uniform


def test_confusion_and_per_class_accuracy() -> None:
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert confusion_matrix(logits, labels, 2).tolist() == [[1, 1], [0, 2]]
    assert per_class_accuracy(logits, labels, 2).tolist() == [0.5, 1.0]


def test_dark_knowledge_of_a_real_run(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(), store)
        knowledge = dark_knowledge(store, result.run_id)
        row = store.get_run(result.run_id)
    assert set(knowledge.logits) == {"teacher", "baseline", "student"}
    assert knowledge.temperature == 4.0
    n = len(knowledge.y_test)
    for kind in ("teacher", "baseline", "student"):
        overall = (knowledge.logits[kind].argmax(1) == knowledge.y_test).float().mean().item()
        assert overall == pytest.approx(row[f"{kind}_test_acc"])
    counts = torch.bincount(knowledge.y_test, minlength=3).float()
    gain = knowledge.class_gain()
    assert (gain * counts).sum().item() / n == pytest.approx(row["kd_gain"], abs=1e-6)
    assert knowledge.confusion_difference().sum().item() == 0  # same examples, moved cells
    rows = knowledge.soft_matrix("teacher").sum(1)
    assert torch.allclose(rows, torch.ones(3))
    colder = knowledge.example_soft_targets("teacher", 0, 0.5)
    warmer = knowledge.example_soft_targets("teacher", 0, 8.0)
    assert colder.max() > warmer.max()


def test_missing_run_is_a_clear_error(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store, pytest.raises(ValueError, match="no run 5"):
        dark_knowledge(store, 5)
