"""One optimisation step of a phase, the running totals of its epoch, and the batched
read-back that records and emits the steps."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from kdstudio.core.distill.cache import TeacherSource
from kdstudio.core.distill.features import FeatureRecorder
from kdstudio.core.distill.losses import ce_loss
from kdstudio.core.distill.methods import WEIGHT_KEYS, Method, StepOutputs
from kdstudio.core.distill.precision import to_device
from kdstudio.core.distill.schedules import SCHEDULED_KEYS, PhaseSchedules
from kdstudio.core.engine.batches import Batch
from kdstudio.core.engine.context import NonFiniteLoss, RunStopped
from kdstudio.core.engine.evaluation import top_class
from kdstudio.core.engine.optim import constant_lr, epoch_lrs, lr_factor
from kdstudio.core.events import Step
from kdstudio.core.models import FeatureModel
from kdstudio.core.plan import PhasePlan

if TYPE_CHECKING:
    from kdstudio.core.engine.context import RunContext
    from kdstudio.core.engine.distributed import Distributed


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
    """The values of 0-d tensors as floats, in one read-back: on a GPU one wait for the
    device instead of one per tensor. `device` is where the tensors are. Tensors of mixed
    floating types are stacked in the widest of them."""
    if not tensors:
        return []
    with torch.no_grad():
        return torch.stack(tensors).tolist()


class EpochTotals:
    """Training loss and accuracy of an epoch, summed over its steps.

    Steps only keep references to their logits and labels; one argmax over everything
    kept counts the correct predictions, at the end of the epoch or once the kept logits
    reach COUNT_ELEMENTS values (16 MB in float32), whichever comes first."""

    COUNT_ELEMENTS = 1 << 22

    def __init__(self) -> None:
        self.loss = 0.0
        self.correct = 0
        self.seen = 0
        self._kept: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._kept_elements = 0

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
            self.correct += int((top_class(logits) == labels).sum())
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


class PhaseStep:
    """One optimisation step of a phase, and the running totals of its epoch.

    A step only queues its work and keeps its loss tensors. `publish()` reads the queued
    steps' numbers back in one go, at most PUBLISH_SECONDS after the first of them (and at
    the end of every epoch), then records and emits them one by one: in a batch that costs
    far less per step than after each step, and on a GPU it means one wait for the device
    per batch of steps, not one per step.
    """

    PUBLISH_SECONDS = 0.1
    MAX_PENDING = 256  # steps; bounds the memory their kept logits hold
    DDP_PUBLISH_STEPS = 32  # under DDP the ranks read back at the same steps

    def __init__(self, run: RunContext, plan: PhasePlan, model: FeatureModel, method: Method,
                 adapters: nn.Module | None, source: TeacherSource | None,
                 student_rec: FeatureRecorder, optimizer: torch.optim.Optimizer,
                 lr: float) -> None:
        self.run_state, self.plan, self.model, self.method = run, plan, model, method
        self.adapters, self.source, self.student_rec = adapters, source, student_rec
        self.optimizer, self.lr = optimizer, lr
        distill = run.config.distill
        # the weights balance a teacher's terms against the labels' CE; a student trained
        # alone (method none, as the baseline phase) takes plain CE: a weight would only
        # rescale its learning rate, and its run would not be the baseline it stands for
        weighted = plan.name == "student" and method.uses_teacher
        self.weights = ({part: getattr(distill, WEIGHT_KEYS[part]) for part in method.parts}
                        if weighted else {"ce": 1.0})
        if plan.name == "student" and not weighted and (distill.ce_weight != 1
                                                         or distill.schedules):
            run.log(f"Method {distill.method}: the student trains on plain cross-entropy, as "
                    "a baseline does; distill.ce_weight and its schedule are not used")
        self.schedules = PhaseSchedules(
            {k: getattr(distill, k) for k in SCHEDULED_KEYS},
            distill.schedules if weighted else {},
            plan.steps_per_epoch, plan.epochs)
        self.moving = bool(self.schedules.moving)  # any schedule that is not constant
        self.count = 0
        self.epoch = 0
        self.totals = EpochTotals()
        self.pending: list[_DoneStep] = []
        # looked up once: a step of a small model takes a few milliseconds, and every
        # attribute chain and function call on its path is part of the engine's overhead
        self.device = run.p.device
        self.on_cpu = self.device.type == "cpu"
        self.precision = run.precision
        self.autocasting = run.precision.enabled
        self.distilling = plan.name == "student"
        self.constant_lr = constant_lr(run.config)
        self.epoch_lrs: list[float] = []
        if self.constant_lr:
            for group in optimizer.param_groups:
                group["lr"] = lr
        self.losses = self._losses  # under DDP: the same inside DistributedDataParallel
        self.distributed: Distributed | None = None

    def distribute(self, distributed: Distributed) -> None:
        """Train data-parallel: the forward pass and loss run inside DDP (gradients
        averaged over the ranks), and the steps are read back every DDP_PUBLISH_STEPS
        steps and at each epoch end, the same steps on every rank, their losses averaged
        over the ranks and their throughputs summed."""
        self.distributed = distributed
        self.losses = distributed.wrap(self.model, self.adapters, self._losses)
        self.PUBLISH_SECONDS = math.inf
        self.MAX_PENDING = self.DDP_PUBLISH_STEPS

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.totals = EpochTotals()
        if not self.constant_lr:  # this epoch's learning rates, worked out in one go
            self.epoch_lrs = epoch_lrs(self.run_state.config, self.lr, self.count, self.plan)

    def _losses(self, x: torch.Tensor, y: torch.Tensor, positions: torch.Tensor,
                transfer_x: torch.Tensor | None, transfer_positions: torch.Tensor | None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """Forward passes and loss of one step: (student logits, loss parts, total)."""
        if not self.distilling:
            logits = self.model(x)
            parts = {"ce": ce_loss(logits, y)}
        elif transfer_x is None:
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
            assert transfer_positions is not None
            parts = self._transfer_parts(logits, y, transfer_x, transfer_positions)
        return logits, parts, weighted_total(parts, self.weights)

    def _transfer_parts(self, labelled_logits: torch.Tensor, labels: torch.Tensor,
                        transfer_x: torch.Tensor, transfer_positions: torch.Tensor
                        ) -> dict[str, torch.Tensor]:
        """Loss parts of a two-stream step: the method's terms on a transfer batch, whose
        labels never reach a loss (methods that need targets get the teacher's predictions),
        and CE on the labelled batch."""
        assert self.source is not None
        x = to_device(transfer_x, self.device)
        indices = to_device(transfer_positions, self.device)
        logits = self.model(x)
        teacher_logits, teacher_features = self.source(x, indices)
        out = StepOutputs(logits, teacher_logits.argmax(1), teacher_logits,
                          student_features=self.student_rec.features,
                          teacher_features=teacher_features, indices=indices)
        parts = self.method.loss_parts(out, self.adapters)
        if "ce" in parts:
            parts["ce"] = ce_loss(labelled_logits, labels)
        return parts

    def run(self, batch: Batch) -> None:
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
        x, y, positions, transfer_x, transfer_positions = batch
        if not self.on_cpu:
            x, y = to_device(x, self.device), to_device(y, self.device)
        current = None
        if self.moving:
            current = self.schedules.values(self.count)
            self.method.temperature = current["temperature"]
            self.weights = {part: current[WEIGHT_KEYS[part]] for part in self.method.parts}
        if self.autocasting:
            with self.precision.autocast():
                logits, parts, total = self.losses(x, y, positions, transfer_x,
                                                   transfer_positions)
        else:  # float32: no context to enter and leave (three Python calls) on every step
            logits, parts, total = self.losses(x, y, positions, transfer_x, transfer_positions)
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.step(total, self.optimizer)
        self.count += 1
        r.run_step += 1
        seen = y.shape[0] if transfer_x is None else y.shape[0] + transfer_x.shape[0]
        pending = self.pending
        # detached: the step's autograd graph is freed now, while it is in the caches,
        # not when the kept tensors go at the epoch's end
        pending.append((self.count, r.run_step, self.epoch + 1, started, seen, lr,
                        total.detach(), {name: part.detach() for name, part in parts.items()},
                        logits.detach(), y, current))
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
        stopping = False
        if self.distributed is not None:  # the ranks' mean losses, summed throughput, and
            # whether any rank was asked to stop (torchrun kills 30 s after its SIGTERM)
            ddp = self.distributed
            *flat, rate, stops = ddp.sum([*flat, rate, float(ddp.stop_requested())])
            flat = [value / ddp.size for value in flat]
            stopping = stops > 0
        r, plan = self.run_state, self.plan
        recorder = r.recorder
        run_id, phase, emit, rows, kept = r.run_id, plan.name, recorder.emit, [], []
        epochs, steps, run_steps = plan.epochs, plan.steps, r.run_steps
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
                emit(Step(run_id, phase, epoch, epochs, count, steps, run_step, run_steps,
                          values))
        finally:
            self.totals.add_steps(kept)
            recorder.metric_rows(rows)
        if stopping:  # every rank at the same step
            raise RunStopped
