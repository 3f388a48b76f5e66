"""The one training engine: teacher, then the student alone (baseline), then the distilled
student. The GUI and the CLI both call `run`, and `resume` to go on with a stopped or
interrupted run from the checkpoint written at its last epoch end (see core/resume.py).

`run(config, store, on_event, should_stop)` emits small dict events and checks
`should_stop()` between batches (a pause is the same call blocking). It knows nothing of
who listens. Event kinds: run_started, phase, step, epoch, log, run_finished. Step events
come in order, one per step, in batches at most 0.1 s apart (see `_PhaseStep`).
"""

from __future__ import annotations

import contextlib
import errno
import math
import platform
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdstudio.core.checkpoint import load_weights, save_model
from kdstudio.core.config import ConfigError, RunConfig, config_from_dict, validate
from kdstudio.core.data import Splits, prepare_data, prepare_transfer_inputs, select_labelled
from kdstudio.core.devices import resolve_device
from kdstudio.core.distill import cache as teacher_cache
from kdstudio.core.distill.cache import TeacherSource, teacher_source
from kdstudio.core.distill.features import FeatureRecorder
from kdstudio.core.distill.losses import ce_loss
from kdstudio.core.distill.methods import WEIGHT_KEYS, Method, StepOutputs, create_method
from kdstudio.core.distill.precision import resolve_precision, to_device
from kdstudio.core.distill.schedules import SCHEDULED_KEYS, PhaseSchedules
from kdstudio.core.models import FeatureModel, count_parameters, create_model, model_size_mb
from kdstudio.core.resume import (
    ResumeRefused,
    TrainingState,
    checkpoint_path,
    read_state,
    refusal,
    remove_checkpoint,
    write_state,
)
from kdstudio.core.store import HistoryError, Store

Event = dict[str, Any]
EventSink = Callable[[Event], None]
PHASES = ("teacher", "baseline", "student")
EVAL_BATCH = 1024


class LabelledCycle:
    """Endless shuffled batches of positions in the labelled subset, a new order each round."""

    def __init__(self, n_labelled: int, batch_size: int, generator: torch.Generator) -> None:
        self.n_labelled = n_labelled
        self.batch_size = batch_size
        self.generator = generator
        self.pending: list[torch.Tensor] = []

    def next(self) -> torch.Tensor:
        if not self.pending:
            order = torch.randperm(self.n_labelled, generator=self.generator)
            self.pending = list(order.split(self.batch_size))[::-1]
        return self.pending.pop()


class RunStopped(Exception):
    """should_stop() said yes between two batches."""


class NonFiniteLoss(Exception):
    """A loss became NaN or infinite; the message names phase, epoch and step."""


@dataclass
class RunResult:
    run_id: int
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class PhasePlan:
    name: str
    epochs: int
    steps_per_epoch: int

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass
class Prepared:
    """Everything a run needs, built and checked before the run gets a row in the history."""

    config: RunConfig
    device: torch.device
    data: Splits
    teacher: FeatureModel | None
    student: FeatureModel
    method: Method
    labelled: torch.Tensor  # indices into data.x_train whose labels the student may use
    transfer_inputs: torch.Tensor | None  # KD terms' inputs when not the labelled batches

    @property
    def two_streams(self) -> bool:
        """CE on labelled batches and the KD terms on transfer-set batches."""
        return self.transfer_inputs is not None

    @property
    def teacher_inputs(self) -> torch.Tensor:
        """What the teacher's outputs (and memory banks) are indexed by in the distillation
        phase: the transfer set, else the labelled subset, by position."""
        if self.transfer_inputs is not None:
            return self.transfer_inputs
        if len(self.labelled) == len(self.data.y_train):
            return self.data.x_train
        return self.data.x_train[self.labelled]


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


def prepare(config: RunConfig) -> Prepared:
    """Validate, load the data and build the models; raises ConfigError on any bad input."""
    problems = validate(config)
    if problems:
        raise ConfigError(problems)
    device = resolve_device(config.device)
    try:
        data = prepare_data(config.data.dataset, config.data.path, config.data.params,
                            config.data.val_fraction, config.seed, config.data.test_fraction)
    except (OSError, ValueError) as error:
        raise ConfigError([f"data: {error}"]) from None
    empty = [name for name, size in data.sizes().items() if size == 0]
    if empty:
        raise ConfigError([f"data: the {' and '.join(empty)} split is empty "
                           f"({', '.join(f'{k} {v}' for k, v in data.sizes().items())}); use "
                           "more data or change data.val_fraction / data.test_fraction"])
    labelled, transfer_inputs = _label_budget(config, data)
    d = config.distill
    method = create_method(d.method, d.temperature, d.student_layer, d.teacher_layer, d.params)
    _seed_everything(config.seed)
    teacher = None
    if method.uses_teacher:
        teacher = create_model(config.teacher.arch, data.input_shape, data.num_classes,
                               **config.teacher.params)
        if config.teacher.checkpoint:
            try:
                load_weights(teacher, config.teacher.checkpoint)
            except ValueError as error:
                raise ConfigError([f"teacher.checkpoint: {error}"]) from None
    _seed_everything(config.seed + 1)
    student = create_model(config.student.arch, data.input_shape, data.num_classes,
                           **config.student.params)
    return Prepared(config, device, data, teacher, student, method, labelled, transfer_inputs)


def _label_budget(config: RunConfig, data: Splits) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The labelled subset of the training split and the transfer set's inputs (None when
    the KD terms use the labelled batches themselves)."""
    d = config.data
    n = len(data.y_train)
    count = d.label_count or max(1, round(d.label_fraction * n))
    if count > n:
        raise ConfigError([f"data.label_count: must be at most the {n} training examples "
                           f"(got {count})"])
    labelled = (torch.arange(n) if count == n
                else select_labelled(data.y_train, count, data.num_classes, config.seed))
    if d.transfer == "labelled":
        return labelled, None
    if d.transfer == "all":
        return labelled, data.x_train
    try:
        return labelled, prepare_transfer_inputs(d.transfer_dataset, d.transfer_path,
                                                 d.transfer_params, data)
    except (OSError, ValueError) as error:
        raise ConfigError([f"data.transfer_dataset: {error}"]) from None


def fused_optimizer_supported(params: list[nn.Parameter]) -> bool:
    """Whether this torch has fused optimiser kernels for the parameters' device and dtype."""
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices
    except ImportError:  # an older torch: no fused kernels outside CUDA
        return False
    devices = set(_get_fused_kernels_supported_devices())
    return bool(params) and all(p.is_floating_point() and p.device.type in devices
                                for p in params)


def make_optimizer(params: list[nn.Parameter], config: RunConfig, lr: float
                   ) -> torch.optim.Optimizer:
    """The configured optimiser, in its fused implementation (one kernel updates every
    parameter) where torch has one for the device. On the CPU that makes the update of a
    small model 2-3x faster than PyTorch's default per-parameter loop (a 3-layer MLP,
    measured alone: SGD with Nesterov momentum 104 -> 33 µs, AdamW 240 -> 108 µs); the
    results differ from that loop's by float rounding only (3e-8 after 20 steps)."""
    o = config.optim
    optimizer_class: type[torch.optim.Optimizer]
    if o.name == "sgd":
        optimizer_class = torch.optim.SGD
        options: dict[str, Any] = {"momentum": o.momentum, "weight_decay": o.weight_decay,
                                   "nesterov": o.momentum > 0}
    else:
        optimizer_class = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        options = {"weight_decay": o.weight_decay}
    if fused_optimizer_supported(params):
        try:
            return optimizer_class(params, lr=lr, fused=True, **options)
        except (TypeError, RuntimeError, ValueError):  # a torch without this fused kernel
            pass
    return optimizer_class(params, lr=lr, **options)


def lr_factor(config: RunConfig, step: int, plan: PhasePlan) -> float:
    """Learning-rate multiplier at a step (0-based) of a phase, for the configured schedule."""
    o = config.optim
    if o.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / max(plan.steps, 1)))
    if o.schedule == "step":
        every = o.step_size or max(plan.epochs // 3, 1)
        return o.gamma ** ((step // plan.steps_per_epoch) // every)
    return 1.0


def weighted_total(parts: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """`sum(weight * part)` over the parts whose weight is not 0: a part switched off cannot
    spoil the total, even if it is NaN. A weight of 1 adds the part as it is."""
    total: torch.Tensor | None = None
    for name, value in parts.items():
        weight = weights[name]
        if weight == 0:
            continue
        term = value if weight == 1 else weight * value
        total = term if total is None else total + term
    if total is None:  # every weight 0 at this step (a warm-up from 0): nothing to learn
        total = next(iter(parts.values())).detach().new_zeros(()).requires_grad_()
    return total


def read_scalars(tensors: list[torch.Tensor], device: torch.device) -> list[float]:
    """The values of 0-d tensors as floats. Off the CPU they come back in one transfer
    (one wait for the device instead of one per tensor)."""
    if device.type == "cpu":
        return [tensor.item() for tensor in tensors]
    return torch.stack([tensor.detach().float() for tensor in tensors]).tolist()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Logits for all of `x`, in eval mode, on the CPU."""
    was_training = model.training
    model.eval()
    out = [model(chunk.to(device)).float().cpu() for chunk in x.split(EVAL_BATCH)]
    model.train(was_training)
    if len(out) == 1:
        return out[0]
    return torch.cat(out) if out else torch.empty(0)


@dataclass(frozen=True)
class TeacherReference:
    """The teacher's predictions on a split, worked out once per run: what each epoch's
    agreement and KL compare the student with."""

    log_probs: torch.Tensor  # log softmax(t) at T = 1
    probs: torch.Tensor
    predictions: torch.Tensor

    @classmethod
    def of(cls, logits: torch.Tensor) -> TeacherReference:
        log_probs = torch.log_softmax(logits.float(), dim=1)
        return cls(log_probs, log_probs.exp(), logits.argmax(1))


def validation_metrics(logits: torch.Tensor, y: torch.Tensor,
                       teacher: TeacherReference | None = None) -> dict[str, float]:
    """val/loss (cross-entropy), val/acc and, against the teacher, val/agreement (same top-1
    class) and val/kl (`KL(softmax(t) || softmax(s))`, batch-averaged): one log-softmax
    and one argmax of the student's logits for all four."""
    n = len(y)
    if n == 0:
        return {"val/loss": float("nan"), "val/acc": float("nan")}
    log_probs = torch.log_softmax(logits.float(), dim=1)
    predictions = logits.argmax(1)
    values = {"val/loss": torch.nn.functional.nll_loss(log_probs, y).item(),
              "val/acc": (predictions == y).sum().item() / n}
    if teacher is not None:
        values["val/agreement"] = (predictions == teacher.predictions).sum().item() / n
        kl = (teacher.probs * (teacher.log_probs - log_probs)).sum() / n
        values["val/kl"] = kl.item()
    return values


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return (logits.argmax(1) == y).float().mean().item() if len(y) else float("nan")


class EpochTotals:
    """Training loss and accuracy of an epoch, summed over its steps.

    Steps only keep references to their logits and labels; one argmax over everything
    kept counts the correct predictions, at the end of the epoch or once the kept logits
    reach COUNT_ELEMENTS values (16 MB in float32), whichever comes first. On MNIST-1D
    that is once per epoch: counting every 32 steps instead took 3.9 ms of a 1.4 s run,
    concatenating the kept batches (measured in place)."""

    COUNT_ELEMENTS = 1 << 22

    def __init__(self) -> None:
        self.loss = 0.0
        self.correct = 0
        self.seen = 0
        self._kept: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._kept_elements = 0

    def add(self, mean_loss: float, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.add_steps([(mean_loss, logits, labels)])

    def add_steps(self, steps: list[tuple[float, torch.Tensor, torch.Tensor]]) -> None:
        """Add steps given as (mean loss, logits, labels)."""
        kept = self._kept
        for mean_loss, logits, labels in steps:
            count = labels.shape[0]
            self.loss += mean_loss * count
            self.seen += count
            kept.append((logits, labels))
            self._kept_elements += logits.numel()
        if self._kept_elements >= self.COUNT_ELEMENTS:
            self._count()

    @torch.no_grad()
    def _count(self) -> None:
        if self._kept:
            logits = torch.cat([kept[0] for kept in self._kept])
            labels = torch.cat([kept[1] for kept in self._kept])
            self.correct += int((logits.argmax(1) == labels).sum())
            self._kept.clear()
            self._kept_elements = 0

    def mean_loss(self) -> float:
        return self.loss / max(self.seen, 1)

    def accuracy(self) -> float:
        self._count()
        return self.correct / max(self.seen, 1)


# A step that has run but whose numbers are not read back yet (a plain tuple: building it
# is part of every step): (phase step 1-based, run step, epoch 1-based, perf_counter at its
# start, samples, lr, total loss, loss parts, logits, labels, scheduled values or None)
_DoneStep = tuple[int, int, int, float, int, float, torch.Tensor, dict[str, torch.Tensor],
                  torch.Tensor, torch.Tensor, "dict[str, float] | None"]


class _PhaseStep:
    """One optimisation step of a phase, and the running totals of its epoch.

    A step only queues its work and keeps its loss tensors. `publish()` reads the queued
    steps' numbers back in one go, at most PUBLISH_SECONDS after the first of them (and at
    the end of every epoch), then records and emits them one by one. In a batch that
    costs 21 µs a step (SQLite included) where doing it after each step cost 52 µs, with
    caches cold from the step (measured in place, 3.5 ms steps on MNIST-1D); on a GPU it
    also means one wait for the device per batch of steps, not one per step.
    """

    PUBLISH_SECONDS = 0.1
    MAX_PENDING = 256  # steps; bounds the memory their kept logits hold

    def __init__(self, run: _Run, plan: PhasePlan, model: FeatureModel, method: Method,
                 adapters: nn.Module | None, source: TeacherSource | None,
                 student_rec: FeatureRecorder, optimizer: torch.optim.Optimizer,
                 lr: float) -> None:
        self.run_state, self.plan, self.model, self.method = run, plan, model, method
        self.adapters, self.source, self.student_rec = adapters, source, student_rec
        self.optimizer, self.lr = optimizer, lr
        distill = run.config.distill
        self.weights = ({part: getattr(distill, WEIGHT_KEYS[part]) for part in method.parts}
                        if plan.name == "student" else {"ce": 1.0})  # others: labels alone
        self.schedules = PhaseSchedules(
            {k: getattr(distill, k) for k in SCHEDULED_KEYS},
            distill.schedules if plan.name == "student" else {},
            plan.steps_per_epoch, plan.epochs)
        self.moving = bool(self.schedules.moving)  # any schedule that is not constant
        self.count = 0
        self.epoch = 0
        self.totals = EpochTotals()
        self.pending: list[_DoneStep] = []
        # looked up once: a step of a small model takes a few milliseconds, and every
        # attribute chain and function call on its path is part of the engine's overhead
        self.x_train, self.y_train = run.p.data.x_train, run.p.data.y_train
        self.device = run.p.device
        self.on_cpu = self.device.type == "cpu"
        self.precision = run.precision
        self.autocasting = run.precision.enabled
        self.distilling = plan.name == "student"
        self.constant_lr = run.config.optim.schedule not in ("cosine", "step")
        self.epoch_lrs: list[float] = []
        if self.constant_lr:
            for group in optimizer.param_groups:
                group["lr"] = lr

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.totals = EpochTotals()
        if not self.constant_lr:  # this epoch's learning rates, worked out in one go
            config, plan = self.run_state.config, self.plan
            self.epoch_lrs = [self.lr * lr_factor(config, self.count + i, plan)
                              for i in range(plan.steps_per_epoch)][::-1]

    def _losses(self, x: torch.Tensor, y: torch.Tensor, positions: torch.Tensor,
                transfer_idx: torch.Tensor | None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Forward passes and loss of one step: (student logits, loss parts, total)."""
        if not self.distilling:
            logits = self.model(x)
            parts = {"ce": ce_loss(logits, y)}
        elif transfer_idx is None:
            # teacher outputs and memory banks are addressed by position in the subset
            indices = positions if self.on_cpu else to_device(positions, self.device)
            # the teacher first, as a hand-written loop does: the student's activations
            # are then the freshest in the caches when the loss and backward read them
            teacher_logits, teacher_features = (
                (None, {}) if self.source is None else self.source(x, indices))
            logits = self.model(x)
            out = StepOutputs(logits, y, teacher_logits, self.student_rec.features,
                              teacher_features, indices)
            parts = self.method.loss_parts(out, self.adapters)
        else:
            logits = self.model(x)
            parts = self.run_state.transfer_step(self.model, self.method, self.adapters,
                                                 self.source, self.student_rec, logits, y,
                                                 transfer_idx)
        return logits, parts, weighted_total(parts, self.weights)

    def run(self, labelled_idx: torch.Tensor, positions: torch.Tensor,
            transfer_idx: torch.Tensor | None) -> None:
        """Forward, loss, backward and update on one batch; queues the step's numbers."""
        r = self.run_state
        if self.constant_lr:
            lr = self.lr
        else:
            lr = (self.epoch_lrs.pop() if self.epoch_lrs
                  else self.lr * lr_factor(r.config, self.count, self.plan))
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        started = time.perf_counter()
        x, y = self.x_train[labelled_idx], self.y_train[labelled_idx]
        if not self.on_cpu:
            x, y = to_device(x, self.device), to_device(y, self.device)
        current = None
        if self.moving:
            current = self.schedules.values(self.count)
            self.method.temperature = current["temperature"]
            self.weights = {part: current[WEIGHT_KEYS[part]] for part in self.method.parts}
        if self.autocasting:
            with self.precision.autocast():
                logits, parts, total = self._losses(x, y, positions, transfer_idx)
        else:  # float32: no context to enter and leave (three Python calls) on every step;
            # with the teacher's and the losses' own checks, 0.5-0.7 % of a 4 ms MNIST-1D step
            logits, parts, total = self._losses(x, y, positions, transfer_idx)
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.step(total, self.optimizer)
        self.count += 1
        r.run_step += 1
        seen = y.shape[0] if transfer_idx is None else y.shape[0] + transfer_idx.shape[0]
        pending = self.pending
        pending.append((self.count, r.run_step, self.epoch + 1, started, seen, lr, total, parts,
                        logits, y, current))
        if started - pending[0][3] >= self.PUBLISH_SECONDS or len(pending) >= self.MAX_PENDING:
            self.publish()

    def publish(self) -> None:
        """Read the queued steps' numbers back (one transfer off the CPU), then record and
        emit each step in order. Raises NonFiniteLoss at the first step whose loss is NaN
        or infinite, after recording the steps before it."""
        done, self.pending = self.pending, []
        if not done:
            return
        tensors: list[torch.Tensor] = []
        for step in done:
            tensors.append(step[6])
            tensors.extend(step[7].values())
        flat = read_scalars(tensors, self.device)
        finished = time.perf_counter()
        wall_offset = time.time() - finished
        # throughput over the batch, from the first step's start to the numbers being back
        # (per step it would only time the queueing of work on a GPU); recorded with the
        # batch's last step
        rate = sum(step[4] for step in done) / max(finished - done[0][3], 1e-9)
        r, plan = self.run_state, self.plan
        run_id, phase, emit, rows, kept = r.run_id, plan.name, r.emit, [], []
        last = done[-1][0]
        keys: Any = None
        names: tuple[str, ...] = ()
        position = 0
        try:
            for count, run_step, epoch, started, _, lr, _, parts, logits, labels, scheduled \
                    in done:
                total_value = flat[position]
                if parts.keys() != keys:
                    keys = parts.keys()
                    names = tuple(f"loss/{name}" for name in keys)
                values = dict(zip(names, flat[position + 1:position + 1 + len(names)],
                                  strict=True))
                position += 1 + len(names)
                if not math.isfinite(total_value):
                    raise NonFiniteLoss(
                        f"the {phase} loss became {total_value} in phase {phase}, "
                        f"epoch {epoch}, step {count}; try a lower learning rate")
                values["loss/total"] = total_value
                values["lr"] = lr
                if count == last:  # one throughput figure per batch of steps
                    values["samples_per_s"] = rate
                if scheduled is not None:
                    values |= self.schedules.metrics(scheduled)
                kept.append((total_value, logits, labels))
                wall = started + wall_offset
                rows.extend([(run_id, phase, count, epoch, name, value, wall)
                             for name, value in values.items()])
                emit({"type": "step", "run_id": run_id, "phase": phase, "epoch": epoch,
                      "epochs": plan.epochs, "step": count, "steps": plan.steps,
                      "run_step": run_step, "run_steps": r.run_steps, "values": values})
        finally:
            self.totals.add_steps(kept)
            r.store.add_metric_rows(rows)


@dataclass
class _PhaseLoop:
    """What a phase's training loop changes as it goes: all of it is in a checkpoint."""

    model: FeatureModel
    adapters: nn.Module | None
    optimizer: torch.optim.Optimizer
    step: _PhaseStep
    order: torch.Generator  # the data order
    cycle: LabelledCycle  # the labelled batches of a two-stream phase


@dataclass
class CheckpointCosts:
    """How many checkpoints a run wrote, the time they took and the size of the last."""

    count: int = 0
    seconds: float = 0.0
    last_bytes: int = 0

    def describe(self) -> str:
        each = self.seconds / max(self.count, 1)
        return (f"Resumable checkpoints: {self.count} written, {each * 1000:.1f} ms each, "
                f"{self.last_bytes / 1e6:.2f} MB")


def adapter_generators(adapters: nn.Module | None) -> dict[str, torch.Generator]:
    """The random generators the adapters' modules hold (CRD draws its negatives from one),
    by module path and attribute name."""
    if adapters is None:
        return {}
    return {f"{path or 'root'}.{name}": value
            for path, module in adapters.named_modules()
            for name, value in vars(module).items() if isinstance(value, torch.Generator)}


def settle_deferred_updates(adapters: nn.Module | None) -> None:
    """Apply updates an adapter defers to its next forward pass (CRD's memory banks), so
    the checkpoint holds them. Nothing reads the adapters between an epoch's last step and
    the next forward pass, so applying them now changes no result."""
    if adapters is None:
        return
    for module in adapters.modules():
        apply = getattr(module, "apply_updates", None)
        if callable(apply):
            apply()


class _Run:
    """State of one run in progress: where events and metrics go, and when to stop."""

    def __init__(self, prepared: Prepared, store: Store, on_event: EventSink,
                 should_stop: Callable[[], bool]) -> None:
        self.p = prepared
        self.config = prepared.config
        self.store = store
        self.emit = on_event
        self.should_stop = should_stop
        self.run_id = -1
        self.summary: dict[str, Any] = {}
        self.run_step = 0
        self.run_steps = 0
        self.plans: dict[str, PhasePlan] = {}
        self.teacher_val: TeacherReference | None = None  # the teacher on the val split
        self.started = time.monotonic()
        self.precision = resolve_precision(self.config.autocast, prepared.device)
        self.optimizer_logged = False
        self.resume_from: TrainingState | None = None  # where a resumed run goes on
        self.first_phase = ""  # a resumed run: the phase it goes on in ("" = a new run)
        self.resumed_at: dict[str, Any] | None = None  # phase, epoch, run_step it went on at
        self.elapsed_before = 0.0  # a resumed run: training time of its earlier sessions
        self.checkpoints = CheckpointCosts()
        self.checkpoint_deferred_logged = False
        self.checkpoint_failed_logged = False

    def log(self, message: str, level: str = "info") -> None:
        """Emit a log line and keep it in the history with the run's metric rows."""
        if self.run_id >= 0:
            self.store.add_log(self.run_id, level, message)
        self.emit({"type": "log", "run_id": self.run_id, "level": level, "message": message})

    def plan_phases(self) -> None:
        batch = self.config.data.batch_size
        if self.p.teacher is not None:
            epochs = 0 if self.config.teacher.checkpoint else self.config.teacher.epochs
            teacher_steps = math.ceil(len(self.p.data.y_train) / batch)
            self.plans["teacher"] = PhasePlan("teacher", epochs, teacher_steps)
        epoch_size = (len(self.p.transfer_inputs) if self.p.two_streams
                      else len(self.p.labelled))
        steps = math.ceil(epoch_size / batch)
        if self.config.distill.baseline and self.p.method.uses_teacher:
            self.plans["baseline"] = PhasePlan("baseline", self.config.optim.epochs, steps)
        self.plans["student"] = PhasePlan("student", self.config.optim.epochs, steps)
        self.run_steps = sum(plan.steps for plan in self.plans.values())

    def describe_label_budget(self) -> None:
        """Say in the log which data each loss term sees and what an epoch means."""
        p, batch = self.p, self.config.data.batch_size
        n, n_labelled = len(p.data.y_train), len(p.labelled)
        if n_labelled < n:
            self.log(f"Labels: the student and the baseline use {n_labelled:,} of {n:,} "
                     f"labelled training examples (class-balanced, seed {self.config.seed}); "
                     "the teacher trains on all of them")
        if not p.two_streams:
            return
        source = ("all training inputs" if self.config.data.transfer == "all"
                  else f"dataset {self.config.data.transfer_dataset}")
        steps = self.plans["student"].steps_per_epoch
        self.log(f"Transfer set: {len(p.transfer_inputs):,} inputs ({source}), labels "
                 f"ignored. One epoch = one pass over the transfer set = {steps} steps; each "
                 f"step: CE on a labelled batch of {batch} (the {n_labelled:,} labelled "
                 f"examples cycle), KD terms on a transfer batch of {batch}. The baseline "
                 "takes the same labelled batches, step for step")

    # ------------------------------------------------------------ one phase

    def train_phase(self, plan: PhasePlan, model: FeatureModel, method: Method,
                    lr: float, initial_state: dict[str, torch.Tensor] | None = None,
                    labelled: torch.Tensor | None = None) -> None:
        """Train `model` for a phase; `method` decides the loss (teacher logits if it needs).

        `labelled` (default: the whole training split) are the examples whose labels the
        phase may use. Baseline and student draw the same batches in the same order.
        """
        config = self.config
        if initial_state is not None:
            model.load_state_dict(initial_state)
        model.to(self.p.device).train()
        teacher = self.p.teacher if (method.uses_teacher and plan.name == "student") else None
        labelled = torch.arange(len(self.p.data.y_train)) if labelled is None else labelled
        # all of the training split: a position is its own index, no gather needed
        everything = len(labelled) == len(self.p.data.y_train)
        with contextlib.ExitStack() as hooks:  # the hooks go, whatever happens
            student_rec = hooks.enter_context(
                FeatureRecorder(model.feature_layers(), method.student_feature_names()))
            adapters, source = None, None
            if teacher is not None:
                teacher_rec = hooks.enter_context(
                    FeatureRecorder(teacher.feature_layers(), method.teacher_feature_names()))
                adapters = self._build_adapters(model, teacher, method, student_rec, teacher_rec)
                source = self._teacher_source(teacher, teacher_rec, method)
            params = list(model.parameters()) + (list(adapters.parameters()) if adapters else [])
            optimizer = make_optimizer(params, config, lr)
            if not self.optimizer_logged:
                self.optimizer_logged = True
                self.log(f"Optimiser: {config.optim.name}, "
                         + ("fused kernels (one update for all parameters)"
                            if optimizer.defaults.get("fused") else
                            "PyTorch's default implementation"))
            step = _PhaseStep(self, plan, model, method, adapters, source, student_rec,
                              optimizer, lr)
            _seed_everything(config.seed + 2)  # same dropout and data order for baseline/student
            order = torch.Generator().manual_seed(config.seed + 3)
            two_streams = self.p.two_streams and plan.name != "teacher"
            cycle = LabelledCycle(len(labelled), config.data.batch_size,
                                  torch.Generator().manual_seed(config.seed + 4))
            loop = _PhaseLoop(model, adapters, optimizer, step, order, cycle)
            first_epoch = 0
            if self.resume_from is not None and self.resume_from.phase == plan.name:
                first_epoch = self.restore_phase(self.resume_from, loop)
                self.resume_from = None
            self.store.update_run(self.run_id, current_phase=plan.name)
            self.emit({"type": "phase", "run_id": self.run_id, "phase": plan.name,
                       "state": "started", "epochs": plan.epochs,
                       "steps_per_epoch": plan.steps_per_epoch, "first_epoch": first_epoch})
            try:
                for epoch in range(first_epoch, plan.epochs):
                    step.start_epoch(epoch)
                    for positions, transfer_idx in self.epoch_batches(
                            len(labelled), two_streams, order, cycle):
                        if self.should_stop():
                            raise RunStopped
                        step.run(positions if everything else labelled[positions], positions,
                                 transfer_idx)
                    step.publish()
                    self.end_epoch(plan, model, epoch + 1, step.count, step.totals)
                    self.write_checkpoint(plan, loop, epoch + 1)
            except Exception:
                step.publish()  # the steps done before a stop or an error are recorded
                raise
        self.emit({"type": "phase", "run_id": self.run_id, "phase": plan.name,
                   "state": "finished"})

    def epoch_batches(self, n_labelled: int, two_streams: bool, order: torch.Generator,
                      cycle: LabelledCycle) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """(positions in the labelled subset, transfer indices or None) for each step.

        One stream: a shuffled pass over the labelled examples. Two streams: a shuffled pass
        over the transfer set, each step paired with the next labelled batch of `cycle`.
        """
        batch = self.config.data.batch_size
        if not two_streams:
            return [(chunk, None) for chunk in
                    torch.randperm(n_labelled, generator=order).split(batch)]
        transfer_order = torch.randperm(len(self.p.transfer_inputs), generator=order)
        return [(cycle.next(), chunk) for chunk in transfer_order.split(batch)]

    def transfer_step(self, model: FeatureModel, method: Method, adapters: nn.Module | None,
                      source: TeacherSource | None, student_rec: FeatureRecorder,
                      labelled_logits: torch.Tensor, labels: torch.Tensor,
                      transfer_idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss parts of a two-stream step: the method's terms on a transfer batch, whose
        labels never reach a loss (methods that need targets get the teacher's predictions),
        and CE on the labelled batch."""
        device = self.p.device
        x = to_device(self.p.transfer_inputs[transfer_idx], device)
        indices = to_device(transfer_idx, device)
        logits = model(x)
        teacher_logits, teacher_features = source(x, indices)
        out = StepOutputs(logits, teacher_logits.argmax(1), teacher_logits,
                          student_features=student_rec.features,
                          teacher_features=teacher_features, indices=indices)
        parts = method.loss_parts(out, adapters)
        if "ce" in parts:
            parts["ce"] = ce_loss(labelled_logits, labels)
        return parts

    def _teacher_source(self, teacher: FeatureModel, recorder: FeatureRecorder,
                        method: Method) -> TeacherSource:
        """Teacher outputs for the distillation phase: cached (frozen teacher, data without
        random augmentation) unless `distill.cache_teacher` is false or the cache too big."""
        return teacher_source(teacher, recorder, method.teacher_feature_names(),
                              self.p.teacher_inputs, self.config.data.batch_size, self.p.device,
                              self.precision, self.config.distill.cache_teacher, to_device,
                              self.log, self.should_stop)

    def _build_adapters(self, student: FeatureModel, teacher: FeatureModel, method: Method,
                        student_rec: FeatureRecorder, teacher_rec: FeatureRecorder
                        ) -> nn.Module | None:
        sample = self.p.data.x_train[:2].to(self.p.device)
        with torch.no_grad():
            was_training = student.training
            student.eval()
            student(sample)
            teacher(sample)
            student.train(was_training)
        adapters = method.build_adapters(dict(student_rec.features), dict(teacher_rec.features),
                                         len(self.p.teacher_inputs))
        if adapters is not None:
            adapters.to(self.p.device).train()
            n = count_parameters(adapters)
            self.log(f"{method.label}: trainable adapter of {n:,} parameters "
                     "(trained with the student, not exported)")
        return adapters

    def end_epoch(self, plan: PhasePlan, model: FeatureModel, epoch: int, step: int,
                  totals: EpochTotals) -> None:
        data, device = self.p.data, self.p.device
        values = {"train/loss": totals.mean_loss(), "train/acc": totals.accuracy()}
        reference = self.teacher_val if plan.name != "teacher" else None
        values |= validation_metrics(predict(model, data.x_val, device), data.y_val, reference)
        self.record_epoch(plan.name, epoch, plan.epochs, step, values)

    def record_epoch(self, phase: str, epoch: int, epochs: int, step: int,
                     values: dict[str, float]) -> None:
        # buffered like the step rows: in the file at most FLUSH_SECONDS later, and at once
        # when the run ends (a commit per epoch costs short epochs about 1 %)
        self.store.add_metrics(self.run_id, phase, step, epoch, values)
        acc = values["val/acc"]
        best = max(self.summary.get(f"{phase}_best_val_acc", -1.0), acc)
        self.summary[f"{phase}_best_val_acc"] = best
        self.summary[f"{phase}_last_val_acc"] = acc
        self.emit({"type": "epoch", "run_id": self.run_id, "phase": phase, "epoch": epoch,
                   "epochs": epochs, "step": step, "values": values})

    # ------------------------------------------------------------ checkpoints

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def write_checkpoint(self, plan: PhasePlan, loop: _PhaseLoop, epochs_done: int) -> None:
        """Save everything the run needs to go on after this epoch as if it never stopped."""
        started = time.perf_counter()
        # the history must hold every row the checkpoint counts as done; while another
        # process holds the write lock the rows wait, and so does the checkpoint (the last
        # one stays valid: a resume deletes what was written after it)
        if not self.store.try_flush():
            if not self.checkpoint_deferred_logged:
                self.checkpoint_deferred_logged = True
                self.log("The history is locked by another process: metric rows are kept "
                         "in memory and epoch checkpoints wait until it is free", "warning")
            return
        settle_deferred_updates(loop.adapters)
        scaler = self.precision.scaler
        state = TrainingState(
            phase=plan.name, epochs_done=epochs_done, phase_step=loop.step.count,
            run_step=self.run_step, elapsed_s=self.elapsed(), summary=dict(self.summary),
            plan=self.plan_rows(), model=loop.model.state_dict(),
            adapters=loop.adapters.state_dict() if loop.adapters is not None else {},
            optimizer=loop.optimizer.state_dict()["state"], rng=self.rng_states(loop),
            cycle_pending=list(loop.cycle.pending),
            scaler=scaler.state_dict() if scaler.is_enabled() else {})
        try:
            size = write_state(checkpoint_path(self.store.artifact_dir(self.run_id)), state)
        except OSError as error:  # the run goes on; a resume starts from the last one written
            if not self.checkpoint_failed_logged:
                self.checkpoint_failed_logged = True
                self.log(f"Could not write the resumable checkpoint ({failure_reason(error)}); "
                         "training goes on, and a resume would start from the last "
                         "checkpoint written", "warning")
            return
        self.checkpoints.count += 1
        self.checkpoints.seconds += time.perf_counter() - started
        self.checkpoints.last_bytes = size

    def rng_states(self, loop: _PhaseLoop) -> dict[str, torch.Tensor]:
        states = {"torch": torch.get_rng_state(), "order": loop.order.get_state(),
                  "cycle": loop.cycle.generator.get_state()}
        if self.p.device.type == "cuda":  # dropout on the GPU draws from the device's generator
            states["cuda"] = torch.cuda.get_rng_state(self.p.device)
        for name, generator in adapter_generators(loop.adapters).items():
            states[f"adapters.{name}"] = generator.get_state()
        return states

    def restore_phase(self, state: TrainingState, loop: _PhaseLoop) -> int:
        """Put a phase back where the checkpoint left it; returns the first epoch to run."""
        loop.model.load_state_dict(state.model)
        if loop.adapters is not None:
            loop.adapters.load_state_dict(state.adapters)
        for name, generator in adapter_generators(loop.adapters).items():
            generator.set_state(state.rng[f"adapters.{name}"])
        optimizer_state = loop.optimizer.state_dict()
        optimizer_state["state"] = state.optimizer
        loop.optimizer.load_state_dict(optimizer_state)
        if state.scaler:
            self.precision.scaler.load_state_dict(state.scaler)
        torch.set_rng_state(state.rng["torch"])
        if "cuda" in state.rng and self.p.device.type == "cuda":
            torch.cuda.set_rng_state(state.rng["cuda"], self.p.device)
        loop.order.set_state(state.rng["order"])
        loop.cycle.generator.set_state(state.rng["cycle"])
        loop.cycle.pending = list(state.cycle_pending)
        loop.step.count = state.phase_step
        return state.epochs_done

    def reopen(self, run_id: int, state: TrainingState) -> None:
        """Take over a stopped or interrupted run's row to go on from `state`: rows written
        after the checkpoint go, the row is `running` again with this process's pid.
        Raises ResumeRefused (nothing written) when the run cannot go on from there."""
        label = f"run {run_id}"
        if state.plan != self.plan_rows():
            raise ResumeRefused(f"{label}: its phases no longer match the checkpoint (the data "
                                f"or config changed): {state.plan} then, {self.plan_rows()} now")
        if state.phase not in self.plans:
            raise ResumeRefused(f"{label}: the checkpoint is of a phase this run does not "
                                f"have ({state.phase})")
        names = list(self.plans)
        redo = names[names.index(state.phase):]
        if not self.store.reopen_run(run_id, redo, state.phase_step):
            raise ResumeRefused(f"{label} is no longer stopped or interrupted (resumed by "
                                "another process?)")
        self.run_id = run_id
        self.summary = dict(state.summary)
        self.run_step = state.run_step
        self.elapsed_before = state.elapsed_s
        self.resume_from = state
        self.first_phase = state.phase
        self.resumed_at = {"phase": state.phase, "epoch": state.epochs_done,
                           "run_step": state.run_step}

    def plan_rows(self) -> list[dict[str, Any]]:
        return [{"name": p.name, "epochs": p.epochs, "steps": p.steps}
                for p in self.plans.values()]

    def done_before(self, phase: str) -> bool:
        """Whether a resumed run finished `phase` in an earlier session."""
        if not self.first_phase:
            return False
        names = list(self.plans)
        return names.index(phase) < names.index(self.first_phase)

    # ------------------------------------------------------------ whole run

    def test_phase(self, phase: str, model: FeatureModel) -> float:
        acc = accuracy(predict(model, self.p.data.x_test, self.p.device), self.p.data.y_test)
        self.summary[f"{phase}_test_acc"] = acc
        plan = self.plans.get(phase)
        step = plan.steps if plan else 0
        self.store.add_metrics(self.run_id, phase, step, plan.epochs if plan else 0,
                               {"test/acc": acc})
        return acc

    def execute(self) -> None:
        p, config = self.p, self.config
        initial_student = {k: v.clone() for k, v in p.student.state_dict().items()}
        teacher = p.teacher
        if teacher is not None:
            plan = self.plans["teacher"]
            trained_before = self.done_before("teacher")
            if trained_before:  # its weights were loaded from the run's teacher file
                teacher.to(p.device)
            elif config.teacher.checkpoint:
                teacher.to(p.device)
                self.log(f"Teacher loaded from {config.teacher.checkpoint}")
            else:
                self.train_phase(plan, teacher, create_method("none", 1.0),
                                 config.teacher.lr or config.optim.lr)
            teacher.eval().requires_grad_(False)
            val_logits = predict(teacher, p.data.x_val, p.device)
            self.teacher_val = TeacherReference.of(val_logits)
            if config.teacher.checkpoint and not trained_before:  # its validation figures
                self.record_epoch("teacher", 0, 0, 0,
                                  validation_metrics(val_logits, p.data.y_val))
            if not trained_before:
                self.log(f"Teacher test accuracy {self.test_phase('teacher', teacher):.2%}")
                self.save("teacher", teacher)
        if "baseline" in self.plans and not self.done_before("baseline"):
            baseline = create_model(p.student.arch, p.data.input_shape, p.data.num_classes,
                                    **p.student.arch_params)
            self.train_phase(self.plans["baseline"], baseline, create_method("none", 1.0),
                             config.optim.lr, initial_student, p.labelled)
            self.log(f"Baseline (student alone) test accuracy "
                     f"{self.test_phase('baseline', baseline):.2%}")
            self.save("baseline", baseline)
        self.train_phase(self.plans["student"], p.student, p.method, config.optim.lr,
                         initial_student, p.labelled)
        self.log(f"Distilled student test accuracy {self.test_phase('student', p.student):.2%}")
        self.save("student", p.student)
        self.log(self.checkpoints.describe())
        if "baseline_test_acc" in self.summary:
            self.summary["kd_gain"] = (self.summary["student_test_acc"]
                                       - self.summary["baseline_test_acc"])

    def save(self, kind: str, model: FeatureModel) -> None:
        data = self.p.data
        extra = {"class_names": data.class_names, "mean": data.mean, "std": data.std}
        weights, sidecar = save_model(model, self.store.artifact_dir(self.run_id), kind, extra)
        self.store.add_artifact(self.run_id, kind, weights, "safetensors",
                                {"spec": str(sidecar.name)})


SMALL_MODELS = 2_000_000  # parameters of teacher and student together


def choose_threads(config: RunConfig, models: list[FeatureModel]) -> int:
    """CPU threads for a run: `config.threads`, else 1 for small models (more threads gain
    little there, and their spinning stalls every step when another program holds a core:
    10-30x slower on a busy 2-core machine), else torch's default."""
    if config.threads > 0:
        return config.threads
    if sum(count_parameters(model) for model in models) < SMALL_MODELS:
        return 1
    return torch.get_num_threads()


def _environment() -> dict[str, Any]:
    # os.uname-based fields only: platform.platform() may spawn `uname -p`, and forking a
    # large process holds the interpreter lock long enough to freeze the window at Start
    system = f"{platform.system()} {platform.release()} {platform.machine()}"
    return {"torch": torch.__version__, "python": platform.python_version(),
            "platform": system, "threads": torch.get_num_threads()}


def _never_stop() -> bool:
    return False


def _ignore(_event: Event) -> None:
    return None


def run(config: RunConfig, store: Store, on_event: EventSink | None = None,
        should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Run teacher, baseline and distilled student; everything is recorded in `store`.

    Bad input raises ConfigError before anything is written. Otherwise the run ends
    `completed`, `stopped` (should_stop said yes) or `failed` (NaN loss, error), and the
    result says which; it does not raise.
    """
    prepared = prepare(config)
    models = [m for m in (prepared.teacher, prepared.student) if m is not None]
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(choose_threads(config, models))
    try:
        return _execute(config, prepared, store, on_event, should_stop)
    finally:
        torch.set_num_threads(previous_threads)
        teacher_cache.release()


def resume(run_id: int, store: Store, on_event: EventSink | None = None,
           should_stop: Callable[[], bool] | None = None) -> RunResult:
    """Go on with a `stopped` or `interrupted` run from its last checkpoint, in its own row.

    On the CPU with the same seed it ends with the metrics an uninterrupted run would have
    had. Raises ResumeRefused (a ConfigError; nothing written) for a run that is not
    resumable: completed, failed or running, without a checkpoint, or whose config no
    longer validates. Otherwise it ends and returns as `run` does.
    """
    row = store.get_run(run_id)
    artifacts = store.artifact_dir(run_id)
    reason = refusal(row, artifacts, run_id)
    if reason:
        raise ResumeRefused(reason)
    assert row is not None
    config, problems = config_from_dict(row["config"])
    try:
        if problems:
            raise ConfigError(problems)
        prepared = prepare(config)
    except ConfigError as error:
        raise ResumeRefused(f"run {run_id}: its config no longer validates: "
                            + "; ".join(error.problems)) from None
    state = read_state(checkpoint_path(artifacts))
    _load_finished_teacher(prepared, state, artifacts, run_id)
    model = prepared.teacher if state.phase == "teacher" else prepared.student
    if model is None or not _same_shapes(model.state_dict(), state.model):
        raise ResumeRefused(f"run {run_id}: the checkpoint's {state.phase} weights do not fit "
                            "the model of its config")
    models = [m for m in (prepared.teacher, prepared.student) if m is not None]
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(choose_threads(config, models))
    try:
        return _execute(config, prepared, store, on_event, should_stop, (run_id, state))
    finally:
        torch.set_num_threads(previous_threads)
        teacher_cache.release()


def _load_finished_teacher(prepared: Prepared, state: TrainingState, artifacts: Path,
                           run_id: int) -> None:
    """A run resumed after its teacher phase gets the teacher it trained (or loaded) then,
    from the run's saved teacher file."""
    if prepared.teacher is None or state.phase == "teacher":
        return
    weights = artifacts / "teacher.safetensors"
    try:
        load_weights(prepared.teacher, weights)
    except ValueError as error:
        raise ResumeRefused(f"run {run_id}: its teacher weights cannot be loaded: "
                            f"{error}") from None


def _same_shapes(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> bool:
    return expected.keys() == found.keys() and all(
        expected[key].shape == found[key].shape for key in expected)


def _execute(config: RunConfig, prepared: Prepared, store: Store, on_event: EventSink | None,
             should_stop: Callable[[], bool] | None,
             resumed: tuple[int, TrainingState] | None = None) -> RunResult:
    state = _Run(prepared, store, on_event or _ignore, should_stop or _never_stop)
    state.plan_phases()
    teacher, student = prepared.teacher, prepared.student
    sizes = {
        "student_params": count_parameters(student),
        "student_size_mb": model_size_mb(student),
        "device": str(prepared.device),
        "env": _environment(),
    }
    if teacher is not None:
        sizes |= {"teacher_params": count_parameters(teacher),
                  "teacher_size_mb": model_size_mb(teacher),
                  "compression": count_parameters(teacher) / max(count_parameters(student), 1)}
    config_dict = config.to_dict()
    plan = state.plan_rows()
    if resumed is None:
        state.run_id = store.create_run(config_dict,
                                        **{k: v for k, v in sizes.items() if k != "env"},
                                        env=_json(sizes["env"]), plan=_json(plan))
    else:
        state.reopen(*resumed)
    state.summary.update({k: v for k, v in sizes.items() if k not in ("env", "device")})
    state.emit({"type": "run_started", "run_id": state.run_id, "name": config.name,
                "config": config_dict, "device": str(prepared.device), "phases": plan,
                "run_steps": state.run_steps, "sizes": sizes,
                "data": prepared.data.sizes() | {
                    "labelled": len(prepared.labelled),
                    "transfer": len(prepared.transfer_inputs) if prepared.two_streams else 0},
                "class_names": prepared.data.class_names,
                "resumed": state.resumed_at})
    if state.resumed_at is not None:
        position = state.resumed_at
        state.log(f"Resumed run {state.run_id} after epoch {position['epoch']} of the "
                  f"{position['phase']} phase (run step {position['run_step']:,}); what it "
                  "wrote after that epoch was dropped and is done again")
    data_sizes = prepared.data.sizes()
    state.log(f"Data {config.data.dataset}: {data_sizes['train']} train, {data_sizes['val']} "
              f"val, {data_sizes['test']} test"
              + ("" if prepared.data.test_is_official else " (test split carved, fixed seed)"))
    if teacher is not None:
        state.log(f"Teacher {teacher.arch}: {sizes['teacher_params']:,} parameters; student "
                  f"{student.arch}: {sizes['student_params']:,} ({sizes['compression']:.1f}x "
                  f"smaller); device {prepared.device}")
    state.describe_label_budget()
    threads = torch.get_num_threads()
    state.log(f"CPU threads: {threads}" + ("" if config.threads else
              " (automatic; set threads = N to choose)"))
    if config.autocast or state.precision.enabled:
        state.log(state.precision.message)
    status, error = "completed", None
    try:
        state.execute()
    except RunStopped:
        status = "stopped"
        state.log("Stopped by request; everything so far is saved", "warning")
    except NonFiniteLoss as failure:
        status, error = "failed", str(failure)
        state.log(error, "error")
    except Exception as failure:  # noqa: BLE001 - any crash must end the run as failed
        status, error = "failed", failure_reason(failure)
        state.log(error, "error")
    duration = state.elapsed()
    state.summary["duration_s"] = duration
    columns = {k: v for k, v in state.summary.items() if k in _SUMMARY_COLUMNS}
    try:
        status, error = store.finish_run(state.run_id, status, error,
                                         summary=_json(state.summary), **columns)
    except Exception as failure:  # noqa: BLE001 - the end could not be recorded: say so
        status, reason = "failed", failure_reason(failure)
        if reason == error:  # the same refusal that failed the run (a damaged history)
            error = f"{error}; the run's end was not recorded"
        else:
            error = (f"{error}; " if error else "") + f"the run's end was not recorded: {reason}"
        state.emit({"type": "log", "run_id": state.run_id, "level": "error", "message": error})
    else:
        if status in ("completed", "failed") and not config.keep_checkpoints:  # not resumable
            remove_checkpoint(store.artifact_dir(state.run_id))
    state.emit({"type": "run_finished", "run_id": state.run_id, "status": status,
                "error": error, "summary": dict(state.summary)})
    return RunResult(state.run_id, status, dict(state.summary), error)


def failure_reason(failure: BaseException) -> str:
    """One line saying why a run failed: the history's own message for a failed write,
    "disk full" and the OS message for a full disk, else the exception's type and
    message."""
    if isinstance(failure, HistoryError):
        return str(failure)
    text = str(failure)
    if (isinstance(failure, OSError) and failure.errno == errno.ENOSPC) \
            or "No space left on device" in text or "StorageFull" in text:
        where = getattr(failure, "filename", None)
        return "disk full: " + (f"cannot write {where}: No space left on device" if where
                                else text)
    if isinstance(failure, sqlite3.Error):
        return f"the history could not be written: {text}"
    return f"{type(failure).__name__}: {text}"


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


_SUMMARY_COLUMNS = {
    f"{phase}_{what}" for phase in PHASES
    for what in ("best_val_acc", "last_val_acc", "test_acc")
} | {"kd_gain", "duration_s"}
