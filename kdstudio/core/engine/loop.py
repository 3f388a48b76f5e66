"""The phase loop: a model trained over epochs of batches from a batch source, with an
epoch-end validation and a resumable checkpoint at epoch ends (at most one a second)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from kdstudio.core.distill.cache import TeacherSource, teacher_source
from kdstudio.core.distill.features import FeatureRecorder
from kdstudio.core.distill.methods import Method
from kdstudio.core.distill.precision import to_device
from kdstudio.core.engine.batches import Batch, BatchSource
from kdstudio.core.engine.context import RunContext, RunStopped, failure_reason
from kdstudio.core.engine.evaluation import predict, validation_metrics
from kdstudio.core.engine.late_teacher import keep_baseline_validation
from kdstudio.core.engine.optim import describe_optimizer, make_optimizer
from kdstudio.core.engine.preparation import seed_everything
from kdstudio.core.engine.step import EpochTotals, PhaseStep
from kdstudio.core.events import PhaseFinished, PhaseStarted
from kdstudio.core.models import FeatureModel, count_parameters
from kdstudio.core.plan import PhasePlan
from kdstudio.core.resume import TrainingState


@dataclass
class PhaseState:
    """What a phase's training loop changes as it goes: all of it is in a checkpoint."""

    model: FeatureModel
    adapters: nn.Module | None
    optimizer: torch.optim.Optimizer
    step: PhaseStep
    batches: BatchSource


def train_phase(run: RunContext, plan: PhasePlan, model: FeatureModel, method: Method,
                lr: float, initial_state: dict[str, torch.Tensor] | None = None,
                labelled: torch.Tensor | None = None) -> None:
    """Train `model` for a phase; `method` decides the loss (teacher logits if it needs).

    `labelled` (default: the whole training split) are the examples whose labels the
    phase may use. Baseline and student draw the same batches in the same order.
    """
    config, p = run.config, run.p
    if initial_state is not None:
        model.load_state_dict(initial_state)
    model.to(p.device).train()
    teacher = p.teacher if (method.uses_teacher and plan.name == "student") else None
    labelled = torch.arange(len(p.data.y_train)) if labelled is None else labelled
    with contextlib.ExitStack() as hooks:  # the hooks go, whatever happens
        student_rec = hooks.enter_context(
            FeatureRecorder(model.feature_layers(), method.student_feature_names()))
        adapters, source = None, None
        if teacher is not None:
            teacher_rec = hooks.enter_context(
                FeatureRecorder(teacher.feature_layers(), method.teacher_feature_names()))
            adapters = build_adapters(run, model, teacher, method, student_rec, teacher_rec)
            source = make_teacher_source(run, teacher, teacher_rec, method)
        params = list(model.parameters()) + (list(adapters.parameters()) if adapters else [])
        optimizer = make_optimizer(params, config, lr)
        if not run.optimizer_logged:
            run.optimizer_logged = True
            run.log(describe_optimizer(config, optimizer))
        step = PhaseStep(run, plan, model, method, adapters, source, student_rec, optimizer, lr)
        distributed = run.p.distributed
        if distributed is not None:
            step.distribute(distributed)
        seed_everything(config.seed + 2)  # same dropout and data order for baseline/student
        batches = run.batches(p, plan.name, labelled)
        if batches.steps_per_epoch != plan.steps_per_epoch:
            raise ValueError(f"the {plan.name} phase's batch source gives "
                             f"{batches.steps_per_epoch} batches an epoch; the plan counts "
                             f"{plan.steps_per_epoch}")
        state = PhaseState(model, adapters, optimizer, step, batches)
        first_epoch = 0
        if run.resume_from is not None and run.resume_from.phase == plan.name:
            first_epoch = restore_phase(run, run.resume_from, state)
            run.resume_from = None
        run.recorder.phase_started(PhaseStarted(run.run_id, plan.name, plan.epochs,
                                                plan.steps_per_epoch, first_epoch))
        should_stop = run.should_stop
        try:
            for epoch in range(first_epoch, plan.epochs):
                step.start_epoch(epoch)
                epoch_batches = iter(batches.epoch(epoch))
                for _ in range(plan.steps_per_epoch):
                    # asked before the batch is drawn: a stop draws no batch it won't use,
                    # and a batch goes to the step straight from being gathered
                    if should_stop():
                        raise RunStopped
                    step.run(next_batch(epoch_batches, plan))
                if next(epoch_batches, None) is not None:
                    raise ValueError(batch_count_error(plan, "more"))
                step.publish()
                end_epoch(run, plan, model, epoch + 1, step.count, step.totals)
                if checkpoint_due(run, plan, epoch + 1):
                    write_checkpoint(run, plan, state, epoch + 1)
                if distributed is not None and distributed.agree_stop():
                    raise RunStopped  # every rank, after the same epoch's checkpoint
        except Exception:
            step.publish()  # the steps done before a stop or an error are recorded
            raise
    run.recorder.emit(PhaseFinished(run.run_id, plan.name))


def next_batch(epoch_batches: Iterator[Batch], plan: PhasePlan) -> Batch:
    batch = next(epoch_batches, None)
    if batch is None:
        raise ValueError(batch_count_error(plan, "fewer"))
    return batch


def batch_count_error(plan: PhasePlan, more_or_fewer: str) -> str:
    return (f"the {plan.name} phase's batch source gave {more_or_fewer} batches in an epoch "
            f"than the {plan.steps_per_epoch} it said it gives")


def make_teacher_source(run: RunContext, teacher: FeatureModel, recorder: FeatureRecorder,
                        method: Method) -> TeacherSource:
    """Teacher outputs for the distillation phase: cached (frozen teacher, data without
    random augmentation) unless `distill.cache_teacher` is false, the cache too big or the
    training inputs augmented."""
    augment = run.config.data.augment
    if augment != "none":
        run.log(f"Teacher-output cache off: data.augment = {augment} gives new inputs every "
                "epoch, so the teacher runs on every batch")
        return TeacherSource(teacher, recorder, run.precision)
    return teacher_source(teacher, recorder, method.teacher_feature_names(),
                          run.p.teacher_inputs, run.config.data.batch_size, run.p.device,
                          run.precision, run.config.distill.cache_teacher, to_device,
                          run.log, run.should_stop)


def build_adapters(run: RunContext, student: FeatureModel, teacher: FeatureModel,
                   method: Method, student_rec: FeatureRecorder, teacher_rec: FeatureRecorder
                   ) -> nn.Module | None:
    """The method's trainable adapters, sized from one forward pass of two examples."""
    p = run.p
    sample = p.data.inputs("train").head(2).to(p.device)
    with torch.no_grad():
        was_training = student.training
        student.eval()
        student(sample)
        teacher(sample)
        student.train(was_training)
    adapters = method.build_adapters(dict(student_rec.features), dict(teacher_rec.features),
                                     len(p.teacher_inputs))
    if adapters is not None:
        adapters.to(p.device).train()
        n = count_parameters(adapters)
        run.log(f"{method.label}: trainable adapter of {n:,} parameters "
                "(trained with the student, not exported)")
    return adapters


def end_epoch(run: RunContext, plan: PhasePlan, model: FeatureModel, epoch: int, step: int,
              totals: EpochTotals) -> None:
    data, device = run.p.data, run.p.device
    if run.p.distributed is not None:  # the epoch over all ranks' shards
        totals.accuracy()  # counts what it kept
        loss, correct, seen = run.p.distributed.sum([totals.loss, totals.correct, totals.seen])
        totals.loss, totals.correct, totals.seen = loss, int(correct), int(seen)
    values = {"train/loss": totals.mean_loss(), "train/acc": totals.accuracy()}
    reference = run.teacher_val if plan.name != "teacher" else None
    logits = predict(model, data.inputs("val"), device)
    values |= validation_metrics(logits, data.y_val, reference)
    if run.teacher_pending and plan.name == "baseline":  # compared once the teacher comes
        keep_baseline_validation(run, epoch, step, logits)
    run.record_epoch(plan.name, epoch, plan.epochs, step, values)


# ---------------------------------------------------------------- checkpoints


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


def rng_states(run: RunContext, state: PhaseState) -> dict[str, torch.Tensor]:
    states = {"torch": torch.get_rng_state(), **state.batches.generator_states()}
    if run.p.device.type == "cuda":  # dropout on the GPU draws from the device's generator
        states["cuda"] = torch.cuda.get_rng_state(run.p.device)
    for name, generator in adapter_generators(state.adapters).items():
        states[f"adapters.{name}"] = generator.get_state()
    return states


CHECKPOINT_EVERY_S = 1.0  # at most one checkpoint per second of training


def checkpoint_due(run: RunContext, plan: PhasePlan, epochs_done: int) -> bool:
    """Whether this epoch's end writes a checkpoint: always under DDP (every rank stops
    after the same checkpoint) and at a phase's last epoch, except the run's last phase
    when checkpoints are not kept (the completed run deletes it at once); otherwise once
    CHECKPOINT_EVERY_S has passed since the last one, so that epochs of a fraction of a
    second do not pay a checkpoint each; a stop loses at most that much training. None
    while a late teacher is awaited (a baseline trained first)."""
    if run.p.distributed is not None:
        return True
    if run.teacher_pending:  # the teacher a resumed run would need is not in the run yet
        return False
    if epochs_done == plan.epochs:
        return run.config.keep_checkpoints or plan.name != run.plan.phases[-1].name
    return time.perf_counter() - run.checkpoints.last_at >= CHECKPOINT_EVERY_S


def write_checkpoint(run: RunContext, plan: PhasePlan, state: PhaseState,
                     epochs_done: int) -> None:
    """Save everything the run needs to go on after this epoch as if it never stopped."""
    started = time.perf_counter()
    recorder = run.recorder
    # the history must hold every row the checkpoint counts as done; while another
    # process holds the write lock the rows wait, and so does the checkpoint (the last
    # one stays valid: a resume deletes what was written after it)
    if not recorder.try_flush():
        if not run.checkpoint_deferred_logged:
            run.checkpoint_deferred_logged = True
            run.log("The history is locked by another process: metric rows are kept "
                    "in memory and epoch checkpoints wait until it is free", "warning")
        return
    settle_deferred_updates(state.adapters)
    scaler = run.precision.scaler
    training = TrainingState(
        phase=plan.name, epochs_done=epochs_done, phase_step=state.step.count,
        run_step=run.run_step, elapsed_s=run.elapsed(), summary=dict(run.summary),
        plan=run.plan.rows(), model=state.model.state_dict(),
        adapters=state.adapters.state_dict() if state.adapters is not None else {},
        optimizer=state.optimizer.state_dict()["state"], rng=rng_states(run, state),
        cycle_pending=state.batches.pending(),
        scaler=scaler.state_dict() if scaler.is_enabled() else {})
    try:
        recorder.write_checkpoint(training)  # copied here, written on the writer's thread
    except OSError as error:  # the previous write failed: this one was not started
        checkpoint_failed(run, error)
        return
    run.checkpoints.count += 1
    run.checkpoints.last_at = time.perf_counter()
    run.checkpoints.seconds += run.checkpoints.last_at - started


def settle_checkpoint(run: RunContext) -> None:
    """Wait for the checkpoint being written (a stopped run is resumable only once it is on
    disk) and note its size."""
    try:
        run.checkpoints.last_bytes = run.recorder.wait_checkpoint()
    except OSError as error:
        checkpoint_failed(run, error)


def checkpoint_failed(run: RunContext, error: OSError) -> None:
    """Say once that a checkpoint could not be written; the run goes on."""
    if not run.checkpoint_failed_logged:
        run.checkpoint_failed_logged = True
        run.log(f"Could not write the resumable checkpoint ({failure_reason(error)}); "
                "training goes on, and a resume would start from the last "
                "checkpoint written", "warning")


def restore_phase(run: RunContext, saved: TrainingState, state: PhaseState) -> int:
    """Put a phase back where the checkpoint left it; returns the first epoch to run."""
    state.model.load_state_dict(saved.model)
    if state.adapters is not None:
        state.adapters.load_state_dict(saved.adapters)
    for name, generator in adapter_generators(state.adapters).items():
        generator.set_state(saved.rng[f"adapters.{name}"])
    optimizer_state = state.optimizer.state_dict()
    optimizer_state["state"] = saved.optimizer
    state.optimizer.load_state_dict(optimizer_state)
    if saved.scaler:
        run.precision.scaler.load_state_dict(saved.scaler)
    torch.set_rng_state(saved.rng["torch"])
    if "cuda" in saved.rng and run.p.device.type == "cuda":
        torch.cuda.set_rng_state(saved.rng["cuda"], run.p.device)
    state.batches.restore(saved.rng, saved.cycle_pending)
    state.step.count = saved.phase_step
    return saved.epochs_done
