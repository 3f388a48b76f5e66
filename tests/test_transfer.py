"""Label budget and transfer sets: what each phase and each loss term may see."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from kdstudio.core.config import ConfigError
from kdstudio.core.data import prepare_data, select_labelled
from kdstudio.core.engine import preparation, run
from kdstudio.core.events import Event, Log, RunStarted
from kdstudio.core.store import Store
from tests.helpers import tiny_config


@pytest.mark.parametrize("count", [1, 7, 30, 31, 100])
def test_labelled_subset_is_class_balanced_and_never_larger(count: int) -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    chosen = select_labelled(labels, count, 3, seed=0)
    assert len(chosen) == count
    assert len(set(chosen.tolist())) == count
    per_class = torch.bincount(labels[chosen], minlength=3)
    share = count // 3
    if share <= 20:  # every class has enough examples for its share
        assert (per_class >= share).all()
        assert per_class.max() - per_class.min() <= count - 3 * share
    assert torch.equal(chosen, select_labelled(labels, count, 3, seed=0))


def test_labelled_subset_depends_on_the_seed_and_caps_at_the_data() -> None:
    labels = torch.arange(100) % 4
    assert not torch.equal(select_labelled(labels, 20, 4, 0), select_labelled(labels, 20, 4, 1))
    assert len(select_labelled(labels, 500, 4, 0)) == 100


def budget_config(transfer: str, checkpoint: str = "", label_count: int = 24):
    config = tiny_config()
    config.data.label_count = label_count
    config.data.transfer = transfer
    config.teacher.checkpoint = checkpoint
    return config


@pytest.fixture
def teacher_file(tmp_path: Path) -> str:
    with Store(tmp_path / "teacher.db") as store:
        result = run(tiny_config(), store)
        return store.artifacts(result.run_id, "teacher")[0]["path"]


def poison_unlabelled(monkeypatch: pytest.MonkeyPatch, inputs: bool, labels: bool) -> None:
    """Once the labelled subset is chosen, make every other training example NaN and/or
    wrongly labelled."""
    real = preparation.label_budget

    def patched(config, data):
        labelled, transfer = real(config, data)
        outside = torch.ones(len(data.y_train), dtype=torch.bool)
        outside[labelled] = False
        if inputs:
            data.x_train[outside] = float("nan")
        if labels:
            data.y_train[outside] = (data.y_train[outside] + 1) % data.num_classes
        return labelled, transfer

    monkeypatch.setattr(preparation, "label_budget", patched)


def test_baseline_and_labelled_student_never_see_unlabelled_inputs(
    tmp_path: Path, teacher_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison_unlabelled(monkeypatch, inputs=True, labels=False)
    with Store(tmp_path / "h.db") as store:
        clean = run(budget_config("labelled", teacher_file), store)
        assert clean.status == "completed", clean.error
        # the same poison is caught as soon as a phase does read unlabelled inputs
        reads_all = run(budget_config("all", teacher_file), store)
        assert reads_all.status == "failed"
        assert "phase student" in reads_all.error
        baseline = store.metrics(reads_all.run_id, name="val/acc", phase="baseline")
        assert len(baseline) == 2  # the baseline finished before the student touched them


def test_transfer_batches_carry_no_labels(
    tmp_path: Path, teacher_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def student_metrics(store: Store, run_id: int) -> list[tuple]:
        return [(r["phase"], r["step"], r["name"], r["value"]) for r in store.metrics(run_id)
                if r["phase"] != "teacher" and r["name"] != "samples_per_s"]

    with Store(tmp_path / "h.db") as store:
        honest = run(budget_config("all", teacher_file), store)
        poison_unlabelled(monkeypatch, inputs=False, labels=True)
        wrong = run(budget_config("all", teacher_file), store)
        assert honest.status == wrong.status == "completed"
        honest_rows = student_metrics(store, honest.run_id)
        assert honest_rows == student_metrics(store, wrong.run_id)
        assert any(name == "loss/kd" for _, _, name, _ in honest_rows)


def test_epoch_is_one_pass_over_the_transfer_set(tmp_path: Path) -> None:
    events: list[Event] = []
    with Store(tmp_path / "h.db") as store:
        result = run(budget_config("all"), store, events.append)
    assert result.status == "completed"
    started = events[0]
    assert isinstance(started, RunStarted)
    assert started.data["labelled"] == 24 and started.data["transfer"] == 144
    steps = {p.name: p.steps for p in started.plan.phases}
    assert steps["baseline"] == steps["student"] == 2 * math.ceil(144 / 32)
    messages = " ".join(e.message for e in events if isinstance(e, Log))
    assert "use 24 of 144 labelled training examples" in messages
    assert "One epoch = one pass over the transfer set = 5 steps" in messages


def test_another_dataset_as_transfer_set(tmp_path: Path) -> None:
    config = budget_config("dataset")
    config.data.transfer_dataset = "synthetic"
    config.data.transfer_params = {"samples": 90, "dims": 6, "classes": 3, "data_seed": 9}
    events: list[Event] = []
    with Store(tmp_path / "h.db") as store:
        result = run(config, store, events.append)
    assert result.status == "completed", result.error
    assert isinstance(events[0], RunStarted) and events[0].data["transfer"] == 90
    wrong_shape = budget_config("dataset")
    wrong_shape.data.transfer_dataset = "digits"
    with Store(tmp_path / "h.db") as store, pytest.raises(ConfigError,
                                                          match="gives inputs shaped"):
        run(wrong_shape, store)


def test_label_count_larger_than_the_data_is_bad_input(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        with pytest.raises(ConfigError, match="data.label_count: must be at most"):
            run(budget_config("all", label_count=10_000), store)
        assert store.list_runs() == []


def test_label_fraction_selects_a_share() -> None:
    data = prepare_data("synthetic", "", tiny_config().data.params, 0.25, seed=3)
    config = tiny_config()
    config.data.label_fraction = 0.2
    labelled, transfer = preparation.label_budget(config, data)
    assert len(labelled) == round(0.2 * len(data.y_train)) and transfer is None


def test_student_alone_has_no_transfer_set() -> None:
    from kdstudio.core.config import validate

    config = budget_config("all")
    config.distill.method = "none"
    assert any(p.startswith("data.transfer: method 'none' has no teacher") for p in
               validate(config))


def test_empty_split_is_bad_input(tmp_path: Path) -> None:
    config = tiny_config()
    config.data.params = {"samples": 20, "dims": 6, "classes": 3}
    config.data.val_fraction = 0.01
    with Store(tmp_path / "h.db") as store:
        with pytest.raises(ConfigError, match="data: the val split is empty"):
            run(config, store)
        assert store.list_runs() == []


def test_crd_memory_bank_covers_the_labelled_subset_only(tmp_path: Path) -> None:
    config = budget_config("labelled")
    config.distill.method = "crd"
    config.distill.kd_weight = 0.0
    config.distill.feature_weight = 0.8
    events: list[Event] = []
    with Store(tmp_path / "h.db") as store:
        result = run(config, store, events.append)
    assert result.status == "completed", result.error
    cache = [e.message for e in events
             if isinstance(e, Log) and "Teacher-output cache on" in e.message]
    assert cache and "of 24 training examples" in cache[0]
