"""Temperature and weight schedules: values, validation messages, and their effect in a run."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from kdstudio.core.config import ConfigError, config_from_dict, load_config, validate
from kdstudio.core.distill.schedules import PhaseSchedules, Schedule, schedule_problems
from kdstudio.core.engine import run
from kdstudio.core.events import Event, Step
from kdstudio.core.store import Store
from tests.helpers import tiny_config


def test_warmup_decay_and_constant_values() -> None:
    warmup = Schedule("warmup", epochs=2, start=0.2)
    assert [warmup.value(1.0, p, 10) for p in (0, 1, 2, 5)] == pytest.approx([0.2, 0.6, 1, 1])
    decay = Schedule("decay", end=1.0)  # over the whole phase of 4 epochs
    assert [decay.value(5.0, p, 4) for p in (0, 1, 4, 6)] == pytest.approx([5, 4, 1, 1])
    short_decay = Schedule("decay", epochs=2)
    assert [short_decay.value(2.0, p, 10) for p in (0, 1, 2, 3)] == pytest.approx([2, 1, 0, 0])
    assert Schedule().value(3.0, 7, 10) == 3.0


def test_phase_schedules_move_per_step_and_report_only_moving_keys() -> None:
    base = {"temperature": 4.0, "ce_weight": 1.0, "kd_weight": 2.0, "feature_weight": 0.0}
    table = {"kd_weight": {"kind": "warmup", "epochs": 1}, "ce_weight": {"kind": "constant"}}
    schedules = PhaseSchedules(base, table, steps_per_epoch=4, epochs=3)
    assert schedules.moving == ["kd_weight"]
    assert [schedules.values(s)["kd_weight"] for s in range(6)] == pytest.approx(
        [0, 0.5, 1, 1.5, 2, 2])
    assert schedules.values(2)["temperature"] == 4.0
    assert schedules.metrics(schedules.values(1)) == {"sched/kd_weight": 0.5}


@pytest.mark.parametrize(("table", "message"), [
    ({"lr": {"kind": "warmup", "epochs": 2}},
     "distill.schedules.lr: nothing to schedule by that name (choose from: temperature, "
     "ce_weight, kd_weight, feature_weight)"),
    ({"kd_weight": 3}, 'distill.schedules.kd_weight: must be a table like {kind = "warmup", '
                       "epochs = 5} (got 3)"),
    ({"kd_weight": {"kind": "cosine"}},
     "distill.schedules.kd_weight.kind: unknown schedule 'cosine' (choose from: constant, "
     "warmup, decay)"),
    ({"kd_weight": {"kind": "warmup"}},
     "distill.schedules.kd_weight.epochs: a warm-up needs epochs >= 1 (got 0)"),
    ({"ce_weight": {"kind": "decay", "epochs": -1}},
     "distill.schedules.ce_weight.epochs: must be >= 0, 0 meaning the whole phase (got -1)"),
    ({"ce_weight": {"kind": "decay", "epochs": 1.5}},
     "distill.schedules.ce_weight.epochs: must be an integer (got 1.5)"),
    ({"kd_weight": {"kind": "decay", "start": 1.0}},
     "distill.schedules.kd_weight.start: only a 'warmup' schedule takes 'start' "
     "(this one is 'decay')"),
    ({"kd_weight": {"kind": "decay", "end": -2}},
     "distill.schedules.kd_weight.end: a weight must be >= 0 (got -2)"),
    ({"kd_weight": {"kind": "decay", "end": "low"}},
     "distill.schedules.kd_weight.end: must be a number (got 'low')"),
    ({"temperature": {"kind": "decay"}},
     "distill.schedules.temperature.end: a temperature decay needs 'end' > 0 (the default 0 is "
     "not a temperature)"),
    ({"temperature": {"kind": "warmup", "epochs": 1, "start": 0}},
     "distill.schedules.temperature.start: the temperature must stay > 0 (got 0)"),
    ({"kd_weight": {"kind": "warmup", "epochs": 1, "speed": 2}},
     "distill.schedules.kd_weight.speed: unknown key (expected one of: kind, epochs, start, "
     "end)"),
])
def test_bad_schedules_get_one_clear_line(table: dict, message: str) -> None:
    assert schedule_problems(table) == [message]


def test_good_schedules_have_no_problems() -> None:
    assert schedule_problems({
        "temperature": {"kind": "decay", "end": 1.0, "epochs": 3},
        "kd_weight": {"kind": "warmup", "epochs": 2, "start": 0.1},
        "ce_weight": {"kind": "constant"},
    }) == []


def test_validation_reports_schedule_problems_and_toml_round_trips(tmp_path: Path) -> None:
    config = tiny_config(method="kd")
    config.distill.schedules = {"kd_weight": {"kind": "warmup", "epochs": 0}}
    assert "distill.schedules.kd_weight.epochs: a warm-up needs epochs >= 1 (got 0)" in (
        validate(config))
    config.distill.schedules = {"kd_weight": {"kind": "warmup", "epochs": 2},
                                "temperature": {"kind": "decay", "end": 1.0}}
    again, problems = config_from_dict(tomllib.loads(config.to_toml()))
    assert problems == [] and again == config
    with pytest.raises(ConfigError) as caught:
        load_config({"distill": {"schedules": "fast"}})
    assert "distill.schedules: must be a table (got 'fast')" in caught.value.problems


def test_run_applies_and_charts_the_scheduled_values(tmp_path: Path) -> None:
    config = tiny_config(method="kd", ce_weight=1.0, kd_weight=2.0, temperature=4.0)
    config.distill.schedules = {"kd_weight": {"kind": "warmup", "epochs": 1},
                                "temperature": {"kind": "decay", "end": 1.0}}
    events: list[Event] = []
    store = Store(tmp_path / "h.db")
    result = run(config, store, events.append)
    assert result.status == "completed"
    steps = [e for e in events if isinstance(e, Step)]
    student = [e.values for e in steps if e.phase == "student"]
    assert all("sched/kd_weight" not in e.values for e in steps if e.phase != "student")
    per_epoch = len(student) // config.optim.epochs
    kd_weights = [v["sched/kd_weight"] for v in student]
    assert kd_weights[0] == 0.0
    assert kd_weights[per_epoch // 2] == pytest.approx(2.0 * (per_epoch // 2) / per_epoch)
    assert kd_weights[per_epoch:] == [2.0] * (len(student) - per_epoch)
    temperatures = [v["sched/temperature"] for v in student]
    assert temperatures[0] == 4.0 and temperatures == sorted(temperatures, reverse=True)
    assert temperatures[-1] == pytest.approx(4.0 - 3.0 * (len(student) - 1) / len(student))
    for v in student:  # the weights really are the scheduled ones
        expected = v["loss/ce"] + v["sched/kd_weight"] * v["loss/kd"]
        assert v["loss/total"] == pytest.approx(expected, rel=1e-5)
    stored = store.metrics(result.run_id, "sched/temperature", "student")
    assert [row["value"] for row in stored] == temperatures


def test_a_step_where_every_scheduled_weight_is_zero_learns_nothing_and_goes_on(
        tmp_path: Path) -> None:
    """ce_weight = 0 and kd_weight warming up from 0: the first step has nothing to learn."""
    config = tiny_config(method="kd", ce_weight=0.0, kd_weight=1.0, temperature=4.0)
    config.distill.schedules = {"kd_weight": {"kind": "warmup", "epochs": 1}}
    events: list[Event] = []
    result = run(config, Store(tmp_path / "h.db"), events.append)
    assert result.status == "completed", result.error
    student = [e.values for e in events if isinstance(e, Step) and e.phase == "student"]
    assert student[0]["sched/kd_weight"] == 0.0 and student[0]["loss/total"] == 0.0
    assert student[1]["loss/total"] == pytest.approx(
        student[1]["sched/kd_weight"] * student[1]["loss/kd"], rel=1e-5)
    assert student[1]["loss/total"] > 0
