"""A run whose teacher checkpoint is still being written (a sweep's shared teacher): it
trains its baseline first, waits, and records what a run with the file there from the
start records."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kdstudio.core.config import RunConfig
from kdstudio.core.engine import TeacherUnavailable, run
from kdstudio.core.events import Epoch, Event, Log, PhaseStarted
from kdstudio.core.replay import replay_events
from kdstudio.core.store import Store
from tests.helpers import tiny_config


class FileLater:
    """A teacher file that appears on the `arrives_at`-th look (copied from `source`)."""

    def __init__(self, source: Path, target: Path, arrives_at: int) -> None:
        self.source, self.target, self.arrives_at = source, target, arrives_at
        self.looks = 0

    def describe(self) -> str:
        return "the test's teacher"

    def ready(self) -> bool:
        self.looks += 1
        if self.looks >= self.arrives_at and not self.target.exists():
            shutil.copy(self.source, self.target)
        return self.target.exists()


class NeverComes:
    def __init__(self, error: bool) -> None:
        self.error = error

    def describe(self) -> str:
        return "a teacher that never comes"

    def ready(self) -> bool:
        if self.error:
            raise TeacherUnavailable("the sweep's teacher was not trained: run 1 ended failed")
        return False


def loading(path: Path) -> RunConfig:
    config = tiny_config()
    config.optim.epochs = 3
    config.teacher.checkpoint, config.teacher.epochs = str(path), 0
    return config


def figures(store: Store, run_id: int) -> list[tuple]:
    return sorted((r["phase"], r["step"], r["epoch"], r["name"], r["value"])
                  for r in store.metrics(run_id) if r["name"] != "samples_per_s")


def test_a_late_teacher_run_trains_its_baseline_first_and_records_the_same_figures(
        tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        trained = run(tiny_config(), store)
        source = store.artifact_dir(trained.run_id) / "teacher.safetensors"
        target = tmp_path / "teacher.safetensors"
        events: list[Event] = []
        late = FileLater(source, target, arrives_at=3)
        waited = run(loading(target), store, events.append, teacher_later=late)
        assert waited.status == "completed" and late.looks == 3
        plain = run(loading(target), store)  # the file there from the start
        assert plain.status == "completed"

        assert figures(store, waited.run_id) == figures(store, plain.run_id)
        accuracies = {k: v for k, v in plain.summary.items() if k.endswith(("_acc", "gain"))}
        assert accuracies and all(waited.summary[k] == v for k, v in accuracies.items())
        started = [e.phase for e in events if isinstance(e, PhaseStarted)]
        assert started == ["baseline", "student"]
        logs = [e.message for e in events if isinstance(e, Log)]
        wait = next(i for i, m in enumerate(logs) if m == "Waiting for the test's teacher")
        assert logs[wait - 1].startswith("Baseline (student alone) test accuracy")
        assert logs[wait + 1].startswith("The test's teacher came after ")
        # the agreement written after the teacher came joins its epoch when replayed
        epochs = [e for _, e in replay_events(store, waited.run_id)
                  if isinstance(e, Epoch) and e.phase == "baseline"]
        assert [e.epoch for e in epochs] == [1, 2, 3]
        assert all({"val/acc", "val/agreement", "val/kl"} <= set(e.values) for e in epochs)


@pytest.mark.parametrize("error", [True, False])
def test_a_teacher_that_never_comes_fails_the_run_or_a_stop_ends_the_wait(
        tmp_path: Path, error: bool) -> None:
    looks: list[int] = []

    def should_stop() -> bool:  # a stop asked for while the run waits
        return not error and bool(looks)

    class Counted(NeverComes):
        def ready(self) -> bool:
            looks.append(1)
            return super().ready()

    with Store(tmp_path / "h.db") as store:
        result = run(loading(tmp_path / "teacher.safetensors"), store,
                     should_stop=should_stop, teacher_later=Counted(error))
        row = store.get_run(result.run_id)
        assert row is not None and store.metrics(result.run_id, phase="baseline")
        assert not store.metrics(result.run_id, phase="student")
        if error:
            assert (result.status, row["status"]) == ("failed", "failed")
            assert row["error"] == ("TeacherUnavailable: the sweep's teacher was not trained: "
                                    "run 1 ended failed")
        else:
            assert (result.status, row["status"]) == ("stopped", "stopped")
            assert len(looks) == 1


def test_a_late_teacher_is_not_fine_tuned(tmp_path: Path) -> None:
    config = loading(tmp_path / "teacher.safetensors")
    config.teacher.epochs = 2
    with Store(tmp_path / "h.db") as store, pytest.raises(ValueError, match="not fine-tuned"):
        run(config, store, teacher_later=NeverComes(False))
