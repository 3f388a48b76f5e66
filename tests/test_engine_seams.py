"""The engine's seams: batches come from a batch source, the recorder is the only thing
that records or emits, and the run plan is the one in core.plan."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from kdstudio.core import events as event_classes
from kdstudio.core.engine import (
    Batch,
    InMemoryBatches,
    Prepared,
    SilentRecorder,
    execute,
    prepare,
    resume,
    run,
)
from kdstudio.core.events import Event, RunStarted, Step
from kdstudio.core.plan import PhasePlan, RunPlan, phase_names, plan_run
from kdstudio.core.store import Store
from tests.helpers import tiny_config


def metric_values(store: Store, run_id: int) -> list[tuple]:
    return [(r["phase"], r["step"], r["epoch"], r["name"], r["value"])
            for r in store.metrics(run_id) if r["name"] != "samples_per_s"]


def few_labels_with_transfer_set():
    config = tiny_config()
    config.data.label_count = 24
    config.data.transfer = "all"  # two streams: CE on labelled batches, KD on transfer ones
    return config


class CountingSource:
    """An explicitly built in-memory source that counts what it hands out."""

    def __init__(self, inner: InMemoryBatches) -> None:
        self.inner = inner
        self.steps_per_epoch = inner.steps_per_epoch
        self.batches = 0
        self.epochs: list[int] = []

    def epoch(self, epoch: int) -> Iterator[Batch]:
        self.epochs.append(epoch)
        for batch in self.inner.epoch(epoch):
            self.batches += 1
            yield batch

    def generator_states(self) -> dict[str, torch.Tensor]:
        return self.inner.generator_states()

    def pending(self) -> list[torch.Tensor]:
        return self.inner.pending()

    def restore(self, states: dict[str, torch.Tensor], pending: list[torch.Tensor]) -> None:
        self.inner.restore(states, pending)


@pytest.mark.parametrize("make_config", [tiny_config, few_labels_with_transfer_set])
def test_an_explicit_in_memory_source_gives_the_same_metrics(tmp_path: Path, make_config
                                                              ) -> None:
    sources: dict[str, CountingSource] = {}

    def explicit(prepared: Prepared, phase: str, labelled: torch.Tensor) -> CountingSource:
        config = prepared.config
        transfer = prepared.transfer_inputs if phase != "teacher" else None
        sources[phase] = CountingSource(InMemoryBatches(
            prepared.data.x_train, prepared.data.y_train, labelled, config.data.batch_size,
            config.seed, transfer))
        return sources[phase]

    with Store(tmp_path / "h.db") as store:
        default = run(make_config(), store)
        events: list[Event] = []
        built = run(make_config(), store, events.append, batches=explicit)
        assert default.status == built.status == "completed"
        rows = metric_values(store, default.run_id)
        assert len(rows) > 50 and metric_values(store, built.run_id) == rows
    started = events[0]
    assert isinstance(started, RunStarted)
    for phase in started.plan.phases:  # every step's batch came from the phase's source
        assert sources[phase.name].batches == phase.steps
        assert sources[phase.name].epochs == list(range(phase.epochs))
    assert sum(isinstance(e, Step) for e in events) == started.run_steps


def test_a_source_in_another_order_changes_the_training(tmp_path: Path) -> None:
    """The loop trains on what its source gives: the same batches in another order train
    another model."""

    class Reversed(CountingSource):
        def epoch(self, epoch: int) -> Iterator[Batch]:
            yield from reversed(list(self.inner.epoch(epoch)))

    def reversed_order(prepared: Prepared, phase: str, labelled: torch.Tensor) -> Reversed:
        config = prepared.config
        return Reversed(InMemoryBatches(prepared.data.x_train, prepared.data.y_train,
                                        labelled, config.data.batch_size, config.seed))

    with Store(tmp_path / "h.db") as store:
        default = run(tiny_config(), store)
        other = run(tiny_config(), store, batches=reversed_order)
        assert other.status == "completed"
        assert metric_values(store, other.run_id) != metric_values(store, default.run_id)


def test_a_source_whose_length_disagrees_with_the_plan_fails_the_run(tmp_path: Path) -> None:
    def short(prepared: Prepared, phase: str, labelled: torch.Tensor) -> CountingSource:
        return CountingSource(InMemoryBatches(prepared.data.x_train, prepared.data.y_train,
                                              labelled, 1000, prepared.config.seed))

    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(), store, batches=short)
    assert result.status == "failed"
    assert "teacher phase's batch source gives 1 batches an epoch; the plan counts 5" in (
        result.error or "")


def test_a_silent_recorder_records_and_emits_nothing_and_trains_the_same(tmp_path: Path
                                                                         ) -> None:
    with Store(tmp_path / "h.db") as store:
        recorded = run(tiny_config(), store)
        runs_before = store.list_runs()
        silent = execute(prepare(tiny_config()), SilentRecorder(store, run_id=99), None)
        assert silent.status == "completed" and silent.run_id == 99
        assert store.list_runs() == runs_before  # no row, no metric, no log, no file
        assert store.metrics(99) == [] and store.logs(99) == []
        assert not store.artifact_dir(99).exists()
    for phase in ("teacher", "baseline", "student"):
        for what in ("best_val_acc", "last_val_acc", "test_acc"):
            key = f"{phase}_{what}"
            assert silent.summary[key] == recorded.summary[key]


def test_the_run_plan_of_core_is_the_plan_the_engine_runs(tmp_path: Path) -> None:
    config = few_labels_with_transfer_set()
    events: list[Event] = []
    with Store(tmp_path / "h.db") as store:
        result = run(config, store, events.append)
        stored = store.get_run(result.run_id)["plan"]
    started = events[0]
    assert isinstance(started, RunStarted)
    assert started.plan == plan_run(config, train_size=144, epoch_size=144)
    assert started.plan == RunPlan((PhasePlan("teacher", 2, 5), PhasePlan("baseline", 2, 5),
                                    PhasePlan("student", 2, 5)))
    assert RunPlan.from_rows(stored) == started.plan
    assert started.plan.steps_before("student") == 20 and started.run_steps == 30
    steps = [e for e in events if isinstance(e, Step)]
    assert [e.run_step for e in steps] == list(range(1, 31))


def test_phase_names_follow_method_and_baseline() -> None:
    config = tiny_config()
    assert phase_names(config) == ["teacher", "baseline", "student"]
    config.distill.baseline = False
    assert phase_names(config) == ["teacher", "student"]
    config.distill.method = "none"
    assert phase_names(config) == ["student"]
    loaded = tiny_config()
    loaded.teacher.checkpoint = "teacher.safetensors"
    assert plan_run(loaded, 100, 50)["teacher"] == PhasePlan("teacher", 0, 0)
    assert plan_run(loaded, 100, 50)["student"] == PhasePlan("student", 2, 2)


def test_every_event_is_a_frozen_slotted_dataclass_with_its_own_kind() -> None:
    classes = [event_classes.RunStarted, event_classes.PhaseStarted,
               event_classes.PhaseFinished, event_classes.Step, event_classes.Epoch,
               event_classes.Log, event_classes.PhaseTested, event_classes.RunFinished]
    assert len({cls.kind for cls in classes}) == len(classes)
    log = event_classes.Log(1, "info", "hello")
    with pytest.raises(dataclasses.FrozenInstanceError):
        log.message = "changed"  # type: ignore[misc]
    assert not hasattr(log, "__dict__")  # slots: no per-event dict
    assert all(dataclasses.is_dataclass(cls) for cls in classes)


def test_a_resumed_run_takes_its_batches_from_the_given_source(tmp_path: Path) -> None:
    """`resume` builds each remaining phase's source with the factory it is given, and the
    source's restored order gives the metrics of the default source."""
    made: list[CountingSource] = []

    def counting(prepared: Prepared, phase: str, labelled: torch.Tensor) -> CountingSource:
        config = prepared.config
        made.append(CountingSource(InMemoryBatches(prepared.data.x_train,
                                                   prepared.data.y_train, labelled,
                                                   config.data.batch_size, config.seed)))
        return made[-1]

    steps = {"n": 0}

    def stop_after_twelve_steps() -> bool:  # in the teacher's third epoch (5 steps each)
        steps["n"] += 1
        return steps["n"] > 12

    with Store(tmp_path / "a.db") as store_a, Store(tmp_path / "b.db") as store_b:
        stopped_a = run(tiny_config(), store_a, should_stop=stop_after_twelve_steps)
        steps["n"] = 0
        stopped_b = run(tiny_config(), store_b, should_stop=stop_after_twelve_steps)
        assert stopped_a.status == stopped_b.status == "stopped"
        default = resume(stopped_a.run_id, store_a)
        counted = resume(stopped_b.run_id, store_b, batches=counting)
        assert default.status == counted.status == "completed"
        assert made and sum(source.batches for source in made) > 0
        assert metric_values(store_b, counted.run_id) == metric_values(store_a,
                                                                       default.run_id)
