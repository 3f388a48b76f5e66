"""Engine: three phases end to end, determinism, stop, NaN, checkpoints, events."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import pytest
import torch

from kdstudio.core.checkpoint import load_model
from kdstudio.core.config import ConfigError
from kdstudio.core.engine import (
    EpochTotals,
    PhasePlan,
    lr_factor,
    read_scalars,
    run,
    weighted_total,
)
from kdstudio.core.engine.evaluation import log_probabilities, top_class
from kdstudio.core.events import (
    Epoch,
    Event,
    Log,
    PhaseFinished,
    PhaseStarted,
    RunFinished,
    RunStarted,
    Step,
)
from kdstudio.core.store import Store
from tests.helpers import tiny_config


def metric_values(store: Store, run_id: int) -> list[tuple]:
    """Every metric row except the timing-dependent ones."""
    return [(r["phase"], r["step"], r["epoch"], r["name"], r["value"])
            for r in store.metrics(run_id) if r["name"] != "samples_per_s"]


def test_full_run_records_three_phases(tmp_path: Path) -> None:
    events: list[Event] = []
    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(), store, events.append)
        assert result.status == "completed", result.error
        row = store.get_run(result.run_id)
        assert row["status"] == "completed" and row["current_phase"] == "student"
        for phase in ("teacher", "baseline", "student"):
            assert 0.0 <= row[f"{phase}_test_acc"] <= 1.0
            epochs = store.metrics(result.run_id, name="val/acc", phase=phase)
            assert [r["epoch"] for r in epochs] == [1, 2]
        assert row["kd_gain"] == pytest.approx(row["student_test_acc"] - row["baseline_test_acc"])
        assert row["teacher_params"] == (6 * 32 + 32) + (32 * 3 + 3)
        assert row["student_params"] == (6 * 8 + 8) + (8 * 3 + 3)
        assert row["compression"] == pytest.approx(row["teacher_params"] / row["student_params"])
        steps = store.metrics(result.run_id, name="loss/kd", phase="student")
        assert len(steps) == 2 * math.ceil(144 / 32)  # 240 - 48 test - 48 val, batches of 32
        kinds = {a["kind"] for a in store.artifacts(result.run_id)}
        assert kinds == {"teacher", "baseline", "student"}
    started, finished = events[0], events[-1]
    assert isinstance(started, RunStarted) and isinstance(finished, RunFinished)
    assert {PhaseStarted, PhaseFinished, Step, Epoch, Log} <= {type(e) for e in events}
    last_step = [e for e in events if isinstance(e, Step)][-1]
    assert last_step.run_step == last_step.run_steps == started.run_steps
    assert finished.summary["student_test_acc"] == row["student_test_acc"]


def test_same_seed_gives_identical_metrics(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        first = run(tiny_config(), store)
        second = run(tiny_config(), store)
        a, b = metric_values(store, first.run_id), metric_values(store, second.run_id)
        assert len(a) > 50 and a == b
        config = tiny_config()
        config.seed = 4
        other = run(config, store)
        assert metric_values(store, other.run_id) != a


def test_baseline_shares_initial_weights_and_data_order(tmp_path: Path) -> None:
    """With the KD term switched off, the distilled student is the baseline, step for step."""
    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(kd_weight=0.0), store)
        rows = store.metrics(result.run_id, name="loss/ce")
        baseline = [r["value"] for r in rows if r["phase"] == "baseline"]
        student = [r["value"] for r in rows if r["phase"] == "student"]
        assert baseline == student and len(baseline) > 0
        assert result.summary["kd_gain"] == 0.0


def test_stop_between_batches_keeps_what_was_done(tmp_path: Path) -> None:
    seen = {"steps": 0}

    def on_event(event: Event) -> None:
        seen["steps"] += isinstance(event, Step)

    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(), store, on_event, should_stop=lambda: seen["steps"] >= 5)
        assert result.status == "stopped"
        row = store.get_run(result.run_id)
        assert row["status"] == "stopped" and row["finished_at"]
        # steps are published in batches: every step that ran is recorded and was emitted
        assert len(store.metrics(result.run_id, name="loss/total")) == seen["steps"] >= 5


def test_nan_loss_fails_naming_phase_epoch_and_step(tmp_path: Path) -> None:
    config = tiny_config()
    config.optim.name = "sgd"
    config.optim.lr = 1e30
    config.optim.schedule = "constant"
    with Store(tmp_path / "h.db") as store:
        result = run(config, store)
        assert result.status == "failed"
        assert "phase teacher, epoch 1, step" in result.error
        assert store.get_run(result.run_id)["error"] == result.error


def test_steps_before_a_nan_step_are_recorded_and_emitted(tmp_path: Path) -> None:
    config = tiny_config()
    config.optim.name, config.optim.lr, config.optim.schedule = "sgd", 1e30, "constant"
    events: list[Event] = []
    with Store(tmp_path / "h.db") as store:
        result = run(config, store, events.append)
        bad_step = int(re.search(r"step (\d+);", result.error).group(1))
        assert bad_step > 1  # the first update is what blows the weights up
        rows = store.metrics(result.run_id, name="loss/total", phase="teacher")
    assert [row["step"] for row in rows] == list(range(1, bad_step))
    assert all(math.isfinite(row["value"]) for row in rows)
    emitted = [e.step for e in events if isinstance(e, Step)]
    assert emitted == list(range(1, bad_step))


def test_bad_config_raises_before_writing(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        with pytest.raises(ConfigError) as error:
            run(tiny_config(temperature=0.0, method="nope"), store)
        assert len(error.value.problems) == 2
        assert store.list_runs() == []


def test_teacher_from_checkpoint(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        first = run(tiny_config(), store)
        teacher_file = store.artifacts(first.run_id, "teacher")[0]["path"]
        config = tiny_config()
        config.teacher.checkpoint = teacher_file
        events: list[Event] = []
        second = run(config, store, events.append)
        assert second.status == "completed"
        assert second.summary["teacher_test_acc"] == first.summary["teacher_test_acc"]
        assert not store.metrics(second.run_id, name="loss/total", phase="teacher")
        assert any(isinstance(e, Log) and "Teacher loaded from" in e.message for e in events)
        # a checkpoint that does not fit the architecture is bad input, not a failed run
        config.teacher.params = {"hidden_sizes": [16]}
        with pytest.raises(ConfigError, match="does not fit mlp"):
            run(config, store)
        assert len(store.list_runs()) == 2


def test_saved_student_rebuilds_with_identical_outputs(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(), store)
        path = Path(store.artifacts(result.run_id, "student")[0]["path"])
    model = load_model(path.with_suffix(".json"))
    x = torch.randn(5, 6)
    again = load_model(path.with_suffix(".json"))
    assert torch.equal(model(x), again(x))
    assert model.spec()["params"] == {"hidden_sizes": [8]}


def test_fitnets_trains_a_regressor_that_is_not_saved(tmp_path: Path) -> None:
    config = tiny_config(method="fitnets", student_layer="hidden1", teacher_layer="hidden1",
                         feature_weight=1.0)
    events: list[Event] = []
    with Store(tmp_path / "h.db") as store:
        result = run(config, store, events.append)
        assert result.status == "completed", result.error
        hint = [r["value"] for r in store.metrics(result.run_id, name="loss/feature")]
        assert len(hint) > 0 and hint[-1] < hint[0]
        student = store.artifacts(result.run_id, "student")[0]["path"]
    from safetensors.torch import load_file

    assert all(not key.startswith("map") for key in load_file(student))
    assert any(isinstance(e, Log) and "adapter of 288 parameters" in e.message
               for e in events)  # 8*32+32


def test_student_alone_method_has_no_teacher(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(method="none"), store)
        row = store.get_run(result.run_id)
        assert result.status == "completed"
        assert row["teacher_test_acc"] is None and row["student_test_acc"] is not None
        assert {r["phase"] for r in store.metrics(result.run_id)} == {"student"}


def test_a_student_alone_run_is_the_baseline_of_a_run_with_a_teacher(tmp_path: Path) -> None:
    """Method none trains on plain CE whatever ce_weight says (a weight on its one term
    would only rescale the learning rate), so it records what a KD run's baseline does."""
    picked = ("loss/ce", "train/loss", "train/acc", "val/loss", "val/acc")
    with Store(tmp_path / "h.db") as store:
        kd = run(tiny_config(method="kd", ce_weight=0.5, kd_weight=0.5), store)
        alone = run(tiny_config(method="none", ce_weight=0.5), store)

        def figures(run_id: int, phase: str) -> list[tuple[int, str, float]]:
            return [(m["step"], m["name"], m["value"]) for m in store.metrics(run_id)
                    if m["phase"] == phase and m["name"] in picked]

        baseline = figures(kd.run_id, "baseline")
        assert len(baseline) == 18  # 2 epochs of 6 steps: loss/ce per step, 4 per epoch
        assert figures(alone.run_id, "student") == baseline
        assert alone.summary["student_test_acc"] == kd.summary["baseline_test_acc"]
        logs = [line["message"] for line in store.logs(alone.run_id)]
        assert ("Method none: the student trains on plain cross-entropy, as a baseline does; "
                "distill.ce_weight and its schedule are not used") in logs


def test_sgd_is_nesterov_unless_the_config_says_plain_momentum() -> None:
    from kdstudio.core.engine.optim import make_optimizer

    config = tiny_config()
    config.optim.name = "sgd"
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert make_optimizer(params, config, 0.1).defaults["nesterov"] is True
    config.optim.nesterov = False
    assert make_optimizer(params, config, 0.1).defaults["nesterov"] is False


def test_learning_rate_schedules() -> None:
    config = tiny_config()
    plan = PhasePlan("student", epochs=6, steps_per_epoch=10)
    config.optim.schedule = "cosine"
    assert lr_factor(config, 0, plan) == 1.0
    assert lr_factor(config, 30, plan) == pytest.approx(0.5)
    config.optim.schedule = "step"
    assert [lr_factor(config, s, plan) for s in (0, 19, 20, 45)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.01])
    config.optim.schedule = "multistep"
    config.optim.milestones = [2, 5]
    assert [lr_factor(config, s, plan) for s in (0, 19, 20, 49, 50, 59)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01, 0.01])
    config.optim.schedule = "constant"
    assert lr_factor(config, 59, plan) == 1.0


@pytest.mark.parametrize(("table", "message"), [
    ({"optim": {"schedule": "multistep"}}, "optim.milestones: the multistep schedule needs"),
    ({"optim": {"schedule": "multistep", "milestones": [5, 3]}},
     "optim.milestones: must be increasing epoch numbers >= 1 (got [5, 3])"),
    ({"optim": {"milestones": [1, "x"]}}, "optim.milestones: must be a list of integers"),
    ({"data": {"loader": "disk"}}, "data.loader: unknown value 'disk' (choose from: auto, "
                                   "memory, stream)"),
    ({"data": {"augment": "mixup"}}, "data.augment: unknown value 'mixup'"),
    ({"data": {"workers": -1}}, "data.workers: must be >= 0"),
])
def test_pipeline_and_multistep_values_are_checked(table: dict, message: str) -> None:
    from kdstudio.core.config import config_from_dict, validate

    config, problems = config_from_dict(table)
    problems += validate(config)
    assert any(p.startswith(message) for p in problems), problems


def test_unreadable_or_unsafe_teacher_files_are_bad_input(tmp_path: Path) -> None:
    import pickle

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")

    class RunsCode:
        def __reduce__(self):
            return (print, ("this must never run",))

    unsafe = tmp_path / "unsafe.pt"
    with unsafe.open("wb") as handle:
        pickle.dump({"weight": RunsCode()}, handle, protocol=2)
    with Store(tmp_path / "h.db") as store:
        for path in (corrupt, unsafe):
            config = tiny_config()
            config.teacher.checkpoint = str(path)
            with pytest.raises(ConfigError, match=f"teacher.checkpoint: cannot read {path}"):
                run(config, store)
        assert store.list_runs() == []


def test_rebuilding_a_saved_model_leaves_the_global_rng_alone(tmp_path: Path) -> None:
    """A model rebuilt while another thread trains must not shift that run's random draws."""
    with Store(tmp_path / "h.db") as store:
        result = run(tiny_config(), store)
        path = Path(store.artifacts(result.run_id, "teacher")[0]["path"])
    before = torch.get_rng_state()
    model = load_model(path.with_suffix(".json"))
    assert torch.equal(before, torch.get_rng_state())
    assert all(p.device.type == "cpu" for p in model.state_dict().values())


def test_threads_auto_for_small_models_and_restored(tmp_path: Path) -> None:
    from kdstudio.core.engine import choose_threads
    from kdstudio.core.models import create_model

    small = [create_model("mlp", (6,), 3, hidden_sizes=[8])]
    config = tiny_config()
    assert choose_threads(config, small) == 1
    config.threads = 3
    assert choose_threads(config, small) == 3
    big = [create_model("mlp", (4096,), 10, hidden_sizes=[512])]  # 2.1 M parameters
    config.threads = 0
    assert choose_threads(config, big) == torch.get_num_threads()
    before = torch.get_num_threads()
    events: list[Event] = []
    with Store(tmp_path / "h.db") as store:
        run(tiny_config(), store, events.append)
    assert torch.get_num_threads() == before
    assert any(isinstance(e, Log) and e.message.startswith("CPU threads: 1 (automatic")
               for e in events)


def test_epoch_totals_count_every_batch_however_they_fall_into_groups(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(EpochTotals, "COUNT_ELEMENTS", 300)  # a count every 6-11 steps
    generator = torch.Generator().manual_seed(0)
    totals = EpochTotals()
    correct = seen = 0
    loss_sum = 0.0
    for step in range(75):
        size = 7 + step % 5
        logits = torch.randn(size, 4, generator=generator, requires_grad=True)
        labels = torch.randint(0, 4, (size,), generator=generator)
        totals.add_steps([(0.1 * step, logits, labels)])
        assert totals._kept_elements < 300  # a count frees what was kept
        correct += int((logits.argmax(1) == labels).sum())
        seen += size
        loss_sum += 0.1 * step * size
    assert totals.accuracy() == correct / seen
    assert totals.mean_loss() == pytest.approx(loss_sum / seen)
    assert totals.accuracy() == correct / seen  # asking twice counts nothing twice
    assert EpochTotals().accuracy() == 0.0 and EpochTotals().mean_loss() == 0.0


@pytest.mark.parametrize("classes", [2, 10, 16, 100])
def test_top_class_and_log_probabilities_match_argmax_and_log_softmax(classes: int) -> None:
    generator = torch.Generator().manual_seed(classes)
    tied = torch.randint(0, 3, (500, classes), generator=generator).float()  # many ties
    tied[0] = float("nan")
    tied[1, 1:] = float("nan")
    tied[2] = float("-inf")
    assert torch.equal(top_class(tied), tied.argmax(1))
    logits = 4 * torch.randn(500, classes, generator=generator)
    assert torch.equal(top_class(logits), logits.argmax(1))
    expected = torch.log_softmax(logits, 1)
    assert torch.allclose(log_probabilities(logits), expected, rtol=0, atol=2e-6)
    half = logits.to(torch.bfloat16)
    assert log_probabilities(half).dtype == torch.float32


def test_weighted_total_skips_parts_switched_off_even_when_nan() -> None:
    ce = torch.tensor(2.0, requires_grad=True)
    kd = torch.tensor(float("nan"), requires_grad=True)
    total = weighted_total({"ce": ce, "kd": kd}, {"ce": 0.5, "kd": 0.0})
    assert total.item() == 1.0
    total.backward()
    assert ce.grad.item() == 0.5 and kd.grad is None
    both = weighted_total({"ce": ce, "kd": torch.tensor(3.0)}, {"ce": 1.0, "kd": 2.0})
    assert both.item() == 8.0
    nothing = weighted_total({"ce": ce, "kd": kd}, {"ce": 0.0, "kd": 0.0})
    assert nothing.item() == 0.0 and nothing.requires_grad


def test_read_scalars_gives_the_same_floats_one_by_one_or_in_one_transfer() -> None:
    tensors = [torch.tensor(1.5), torch.tensor(0.25, dtype=torch.float16),
               torch.tensor(float("nan")), torch.tensor(3.0, requires_grad=True) * 2]
    one_by_one = read_scalars(tensors, torch.device("cpu"))
    stacked = read_scalars(tensors, torch.device("cuda"))  # the path a GPU takes (on CPU data)
    assert one_by_one[:2] == stacked[:2] == [1.5, 0.25] and one_by_one[3] == stacked[3] == 6.0
    assert math.isnan(one_by_one[2]) and math.isnan(stacked[2])


def test_last_epoch_validation_figures_match_the_saved_models(tmp_path: Path) -> None:
    """val/loss, val/acc, val/agreement and val/kl of the student's last epoch, recomputed
    from the saved student and teacher with plain torch.nn.functional."""
    from kdstudio.core.data import prepare_data

    config = tiny_config()
    with Store(tmp_path / "h.db") as store:
        result = run(config, store)
        student = load_model(Path(store.artifacts(result.run_id, "student")[0]["path"])
                             .with_suffix(".json")).eval()
        teacher = load_model(Path(store.artifacts(result.run_id, "teacher")[0]["path"])
                             .with_suffix(".json")).eval()
        last = {row["name"]: row["value"] for row in store.metrics(result.run_id, phase="student")
                if row["epoch"] == config.optim.epochs and row["name"].startswith("val/")}
    d = config.data
    data = prepare_data(d.dataset, d.path, d.params, d.val_fraction, config.seed,
                        d.test_fraction)
    with torch.no_grad():
        s, t = student(data.x_val), teacher(data.x_val)
    y = data.y_val
    assert last["val/loss"] == pytest.approx(torch.nn.functional.cross_entropy(s, y).item(),
                                             rel=1e-5)
    assert last["val/acc"] == pytest.approx((s.argmax(1) == y).double().mean().item())
    assert last["val/agreement"] == pytest.approx(
        (s.argmax(1) == t.argmax(1)).double().mean().item())
    kl = torch.nn.functional.kl_div(torch.log_softmax(s, 1), torch.log_softmax(t, 1),
                                    reduction="batchmean", log_target=True)
    assert last["val/kl"] == pytest.approx(kl.item(), rel=1e-4, abs=1e-7)
    assert last["val/kl"] > 0 and 0 < last["val/agreement"] <= 1


def test_step_rows_keep_their_own_times_though_written_in_batches(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        before = time.time()
        result = run(tiny_config(), store)
        after = time.time()
        steps = store.metrics(result.run_id, name="loss/total")
        rates = store.metrics(result.run_id, name="samples_per_s")
    walls = [row["wall_time"] for row in steps]
    assert walls == sorted(walls) and before <= walls[0] and walls[-1] <= after
    assert len(set(walls)) == len(walls)  # each step's start, not the time of its batch
    # one throughput figure per batch of steps, on its last step; every epoch ends a batch
    assert 0 < len(rates) < len(steps) and min(row["value"] for row in rates) > 0
    ends = {(row["phase"], row["epoch"]): row["step"] for row in steps}
    assert set(ends.items()) <= {((row["phase"], row["epoch"]), row["step"]) for row in rates}


def test_optimisers_use_fused_kernels_where_torch_has_them(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    from kdstudio.core import engine
    from kdstudio.core.engine import optim
    from kdstudio.core.models import create_model

    params = list(create_model("mlp", (6,), 3, hidden_sizes=[8]).parameters())
    config = tiny_config()
    assert engine.fused_optimizer_supported(params)  # torch 2.13 has CPU kernels
    assert not engine.fused_optimizer_supported([torch.zeros(3, dtype=torch.long)])
    for name in ("sgd", "adam", "adamw"):
        config.optim.name = name
        assert engine.make_optimizer(params, config, 0.1).defaults["fused"] is True

    class NoFusedSGD(torch.optim.SGD):  # a torch whose SGD has no fused kernel
        def __init__(self, *args: object, fused: bool | None = None, **kwargs: object) -> None:
            if fused:
                raise RuntimeError("fused=True is not supported")
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "SGD", NoFusedSGD)
    config.optim.name = "sgd"
    optimizer = engine.make_optimizer(params, config, 0.1)
    assert isinstance(optimizer, NoFusedSGD) and not optimizer.defaults["fused"]
    monkeypatch.undo()
    events: list[Event] = []
    with Store(tmp_path / "h.db") as store:
        fused = run(tiny_config(), store, events.append)
        monkeypatch.setattr(optim, "fused_optimizer_supported", lambda params: False)
        plain = run(tiny_config(), store, events.append)
        fused_acc = [r["value"] for r in store.metrics(fused.run_id, name="val/acc")]
        plain_acc = [r["value"] for r in store.metrics(plain.run_id, name="val/acc")]
    logs = [e.message for e in events if isinstance(e, Log) and "Optimiser" in e.message]
    assert logs == ["Optimiser: adam, fused kernels (one update for all parameters)",
                    "Optimiser: adam, PyTorch's default implementation"]
    # the same training up to float rounding: the accuracies agree
    assert fused_acc == pytest.approx(plain_acc, abs=0.02)
