"""A whole run: `run` a config, or `resume` a stopped or interrupted one; the phases in
their order, the run's start and end, and why it failed."""

from __future__ import annotations

import copy
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kdstudio.core.checkpoint import load_weights
from kdstudio.core.config import ConfigError, RunConfig, config_from_dict
from kdstudio.core.distill import cache as teacher_cache
from kdstudio.core.distill.methods import create_method
from kdstudio.core.engine import distributed
from kdstudio.core.engine.batches import BatchFactory
from kdstudio.core.engine.context import NonFiniteLoss, RunContext, RunStopped, failure_reason
from kdstudio.core.engine.evaluation import (
    TeacherReference,
    accuracy,
    predict,
    validation_metrics,
)
from kdstudio.core.engine.late_teacher import (
    LateTeacher,
    record_kept_agreement,
    trains_baseline_first,
    wait_for_teacher,
)
from kdstudio.core.engine.loop import settle_checkpoint, train_phase
from kdstudio.core.engine.preparation import Prepared, prepare
from kdstudio.core.engine.recorder import Recorder, SilentRecorder
from kdstudio.core.events import EventSink, Log, PhaseTested, ResumePoint, RunFinished, RunStarted
from kdstudio.core.models import FeatureModel, count_parameters, create_model, model_size_mb
from kdstudio.core.models.custom import CustomModel
from kdstudio.core.models.opaque import OpaqueTeacher
from kdstudio.core.plan import PHASES
from kdstudio.core.resume import (
    ResumeRefused,
    TrainingState,
    checkpoint_path,
    read_state,
    refusal,
)
from kdstudio.core.store import Store

SMALL_MODELS = 2_000_000  # parameters of teacher and student together
_SUMMARY_COLUMNS = {
    f"{phase}_{what}" for phase in PHASES
    for what in ("best_val_acc", "last_val_acc", "test_acc")
} | {"kd_gain", "duration_s"}


@dataclass
class RunResult:
    run_id: int
    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def choose_threads(config: RunConfig, models: list[FeatureModel]) -> int:
    """CPU threads for a run: `config.threads`, else 1 for small models (more threads gain
    little there, and their spinning stalls every step when another program holds a core),
    else torch's default."""
    if config.threads > 0:
        return config.threads
    if sum(count_parameters(model) for model in models) < SMALL_MODELS:
        return 1
    return torch.get_num_threads()


def run(config: RunConfig, store: Store | None, on_event: EventSink | None = None,
        should_stop: Callable[[], bool] | None = None,
        batches: BatchFactory | None = None,
        teacher_later: LateTeacher | None = None) -> RunResult:
    """Run teacher, baseline and distilled student; everything is recorded in `store`.

    Bad input raises ConfigError before anything is written. Otherwise the run ends
    `completed`, `stopped` (should_stop said yes) or `failed` (NaN loss, error), and the
    result says which; it does not raise. `batches` makes each phase's batch source
    (default: `streaming.default_batches`, memory or stream as `data.loader` chose).
    `teacher_later`: `teacher.checkpoint` is still being written by another process; the
    run trains its baseline meanwhile (see `late_teacher`). Not under torchrun.

    Under torchrun (see `distributed`) every process calls it: rank 0 records (and may
    be given `store` None elsewhere), the others record and emit nothing.
    """
    world = distributed.detect()
    if world is not None and (problems := distributed.refusals(config)):
        raise ConfigError(problems)
    if teacher_later is not None and (world is not None or config.teacher.epochs):
        raise ValueError("a late teacher is loaded as it is, in a run of one process: "
                         "not fine-tuned (teacher.epochs > 0), not under torchrun")
    prepared = prepare(config, teacher_later)
    if world is None:
        assert store is not None, "the recording process needs the history"
        return _with_threads(prepared, Recorder(store, on_event), should_stop, None, batches)
    ddp = distributed.start(world, prepared)
    try:
        ddp.stop_requested = should_stop or _never_stop  # agreed over the ranks
        recorder = (Recorder(store, on_event) if ddp.is_main and store is not None
                    else SilentRecorder(store, -1))
        return _with_threads(prepared, recorder, _never_stop, None, batches)
    finally:
        ddp.close()


def resume(run_id: int, store: Store, on_event: EventSink | None = None,
           should_stop: Callable[[], bool] | None = None,
           batches: BatchFactory | None = None) -> RunResult:
    """Go on with a `stopped` or `interrupted` run from its last checkpoint, in its own row.

    On the CPU with the same seed it ends with the metrics an uninterrupted run would have
    had. Raises ResumeRefused (a ConfigError; nothing written) for a run that is not
    resumable: completed, failed or running, without a checkpoint, or whose config no
    longer validates. Otherwise it ends and returns as `run` does. `batches` as for `run`:
    a source must restore the data order the checkpoint saved (`BatchSource.restore`).
    """
    if distributed.detect() is not None:
        raise ResumeRefused(f"run {run_id}: kdstudio resume runs in one process; resuming "
                            "under torchrun is not supported yet")
    row = store.get_run(run_id)
    artifacts = store.artifact_dir(run_id)
    reason = refusal(row, artifacts, run_id)
    if reason:
        raise ResumeRefused(reason)
    assert row is not None
    config, problems = config_from_dict(row["config"])
    use_code_copies(config, store.artifacts(run_id, "code"))
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
    return _with_threads(prepared, Recorder(store, on_event), should_stop, (run_id, state),
                         batches)


def _with_threads(prepared: Prepared, recorder: Recorder, should_stop: Callable[[], bool] | None,
                  resumed: tuple[int, TrainingState] | None,
                  batches: BatchFactory | None = None) -> RunResult:
    models = [m for m in (prepared.teacher, prepared.student) if m is not None]
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(choose_threads(prepared.config, models))
    try:
        return execute(prepared, recorder, should_stop, resumed, batches)
    finally:
        torch.set_num_threads(previous_threads)
        teacher_cache.release()


def _load_finished_teacher(prepared: Prepared, state: TrainingState, artifacts: Path,
                           run_id: int) -> None:
    """A run resumed after its teacher phase gets the teacher it trained (or loaded) then,
    from the run's saved teacher file."""
    if prepared.teacher is None or state.phase == "teacher" or is_opaque(prepared.teacher):
        return
    weights = artifacts / "teacher.safetensors"
    try:
        load_weights(prepared.teacher, weights)
    except ValueError as error:
        raise ResumeRefused(f"run {run_id}: its teacher weights cannot be loaded: "
                            f"{error}") from None


def use_code_copies(config: RunConfig, code_artifacts: list[dict[str, Any]]) -> None:
    """Point a stored run's custom models at the copies of their code kept with the run
    (the files it imported), where they still exist."""
    for artifact in code_artifacts:
        role = artifact["meta"].get("role")
        if role in ("teacher", "student") and Path(artifact["path"]).is_file():
            getattr(config, role).params["file"] = artifact["path"]


def is_opaque(model: FeatureModel) -> bool:
    return isinstance(model, OpaqueTeacher)


def _same_shapes(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> bool:
    return expected.keys() == found.keys() and all(
        expected[key].shape == found[key].shape for key in expected)


def _environment(prepared: Prepared) -> dict[str, Any]:
    # os.uname-based fields only: platform.platform() may spawn `uname -p`, and forking a
    # large process holds the interpreter lock long enough to freeze the window at Start
    system = f"{platform.system()} {platform.release()} {platform.machine()}"
    env = {"torch": torch.__version__, "python": platform.python_version(),
           "platform": system, "threads": torch.get_num_threads()}
    if prepared.distributed is not None:
        env |= prepared.distributed.environment()
    return env


def _never_stop() -> bool:
    return False


def _reopen(run: RunContext, run_id: int, state: TrainingState) -> None:
    """Take over a stopped or interrupted run's row to go on from `state`: rows written
    after the checkpoint go, the row is `running` again with this process's pid.
    Raises ResumeRefused (nothing written) when the run cannot go on from there."""
    label = f"run {run_id}"
    rows = run.plan.rows()
    if state.plan != rows:
        raise ResumeRefused(f"{label}: its phases no longer match the checkpoint (the data "
                            f"or config changed): {state.plan} then, {rows} now")
    if state.phase not in run.plan:
        raise ResumeRefused(f"{label}: the checkpoint is of a phase this run does not "
                            f"have ({state.phase})")
    names = run.plan.names
    if not run.recorder.reopen(run_id, names[names.index(state.phase):], state.phase_step):
        raise ResumeRefused(f"{label} is no longer stopped or interrupted (resumed by "
                            "another process?)")
    run.summary = dict(state.summary)
    run.run_step = state.run_step
    run.elapsed_before = state.elapsed_s
    run.resume_from = state
    run.resumed_at = ResumePoint(state.phase, state.epochs_done, state.run_step)


def _sizes(prepared: Prepared) -> dict[str, Any]:
    teacher, student = prepared.teacher, prepared.student
    sizes: dict[str, Any] = {
        "student_params": count_parameters(student),
        "student_size_mb": model_size_mb(student),
        "device": str(prepared.device),
        "env": _environment(prepared),
    }
    if teacher is not None:
        opaque = isinstance(teacher, OpaqueTeacher)
        count = teacher.parameter_count if opaque else count_parameters(teacher)
        size_mb = teacher.size_mb() if opaque else model_size_mb(teacher)
        sizes |= {"teacher_params": count, "teacher_size_mb": size_mb,
                  "compression": count / max(count_parameters(student), 1)}
    return sizes


def _start(run: RunContext, resumed: tuple[int, TrainingState] | None) -> None:
    """Create (or reopen) the run's row, emit its start and log what it runs on."""
    p, config, recorder = run.p, run.config, run.recorder
    sizes = _sizes(p)
    config_dict = config.to_dict()
    if resumed is None:
        recorder.create_run(config_dict, run.plan, sizes["env"],
                            **{k: v for k, v in sizes.items() if k != "env"})
    else:
        _reopen(run, *resumed)
    run.summary.update({k: v for k, v in sizes.items() if k not in ("env", "device")})
    data_sizes = p.data.sizes()
    recorder.emit(RunStarted(
        run.run_id, config.name, config_dict, str(p.device), run.plan, sizes,
        data_sizes | {"labelled": len(p.labelled),
                      "transfer": len(p.transfer_inputs) if p.two_streams else 0},
        p.data.class_names, run.resumed_at))
    if run.resumed_at is not None:
        at = run.resumed_at
        run.log(f"Resumed run {run.run_id} after epoch {at.epoch} of the {at.phase} phase "
                f"(run step {at.run_step:,}); what it wrote after that epoch was dropped and "
                "is done again")
    run.log(f"Data {config.data.dataset}: {data_sizes['train']} train, {data_sizes['val']} "
            f"val, {data_sizes['test']} test"
            + ("" if p.data.test_is_official else " (test split carved, fixed seed)"))
    if p.data.loader_reason:
        run.log(p.data.loader_reason)
    if p.distributed is not None:
        run.log(p.distributed.describe(config.data.batch_size))
    if resumed is None:
        _keep_code(run)
    for note in p.teacher_notes:
        run.log(note)
    if p.teacher is not None:
        name = p.teacher.label if is_opaque(p.teacher) else p.teacher.arch
        run.log(f"Teacher {name}: {sizes['teacher_params']:,} parameters; student "
                f"{p.student.arch}: {sizes['student_params']:,} ({sizes['compression']:.1f}x "
                f"smaller); device {p.device}")
    run.describe_label_budget()
    run.log(f"CPU threads: {torch.get_num_threads()}" + ("" if config.threads else
            " (automatic; set threads = N to choose)"))
    if config.autocast or run.precision.enabled:
        run.log(run.precision.message)
    for compiled in p.compiled:  # compile = true: each first step's compile time
        compiled.log = run.log


def _keep_code(run: RunContext) -> None:
    """Copy the code of the run's custom models (the bytes imported) into its files."""
    for role, model in (("teacher", run.p.teacher), ("student", run.p.student)):
        if isinstance(model, CustomModel):
            file = str(model.arch_params.get("file", ""))
            run.recorder.save_code(role, file, model.code_source, model.code_sha256)
            run.log(f"{role.capitalize()} code {file} (sha256 {model.code_sha256}) is kept "
                    "with the run")


def execute(prepared: Prepared, recorder: Recorder, should_stop: Callable[[], bool] | None,
            resumed: tuple[int, TrainingState] | None = None,
            batches: BatchFactory | None = None) -> RunResult:
    """Record and train a prepared run to its end (see `run`), through `recorder` (a
    `SilentRecorder` for a process that must not record); `batches` as for `run`."""
    run = RunContext(prepared, recorder, should_stop or _never_stop, batches)
    _start(run, resumed)
    status, error = "completed", None
    try:
        _train_phases(run)
    except RunStopped:
        status = "stopped"
    except NonFiniteLoss as failure:
        status, error = "failed", str(failure)
    except Exception as failure:  # noqa: BLE001 - any crash must end the run as failed
        status, error = "failed", failure_reason(failure)
    settle_checkpoint(run)  # a checkpoint that failed says so before the run's end is said
    if status == "stopped":
        run.log("Stopped by request; everything so far is saved", "warning")
    elif error is not None:
        run.log(error, "error")
    run.summary["duration_s"] = run.elapsed()
    columns = {k: v for k, v in run.summary.items() if k in _SUMMARY_COLUMNS}
    try:
        status, error = recorder.finish(status, error, run.summary, **columns)
    except Exception as failure:  # noqa: BLE001 - the end could not be recorded: say so
        status, reason = "failed", failure_reason(failure)
        if reason == error:  # the same refusal that failed the run (a damaged history)
            error = f"{error}; the run's end was not recorded"
        else:
            error = (f"{error}; " if error else "") + f"the run's end was not recorded: {reason}"
        recorder.emit(Log(run.run_id, "error", error))
    else:
        if status in ("completed", "failed") and not run.config.keep_checkpoints:
            recorder.remove_checkpoint()  # not resumable
    recorder.emit(RunFinished(run.run_id, status, error, dict(run.summary)))
    return RunResult(run.run_id, status, dict(run.summary), error)


def _train_phases(run: RunContext) -> None:
    """Teacher (trained, or loaded from its file), baseline, then the distilled student;
    each tested and saved after training. A resumed run skips the phases it finished."""
    p, config = run.p, run.config
    initial_student = {k: v.clone() for k, v in p.student.state_dict().items()}
    teacher = p.teacher
    baseline_trained = False
    if run.teacher_pending:  # its file is still being written: the baseline goes first
        if trains_baseline_first(run):
            _train_baseline(run, initial_student)
            baseline_trained = True
        wait_for_teacher(run)
    if teacher is not None:
        trained_before = run.done_before("teacher")
        loaded = not trained_before and not run.plan["teacher"].epochs
        if trained_before:  # its weights were loaded from the run's teacher file
            teacher.to(p.device)
        elif loaded:
            teacher.to(p.device)
            run.log(f"Teacher loaded from {config.teacher.checkpoint}")
        else:  # trained, or fine-tuned from a checkpoint with a new head
            train_phase(run, run.plan["teacher"], teacher, create_method("none", 1.0),
                        config.teacher.lr or config.optim.lr)
        teacher.eval().requires_grad_(False)
        val_logits = predict(teacher, p.data.inputs("val"), p.device)
        run.teacher_val = TeacherReference.of(val_logits)
        if run.kept_validation:
            record_kept_agreement(run)
        if loaded:  # its validation figures
            run.record_epoch("teacher", 0, 0, 0, validation_metrics(val_logits, p.data.y_val))
        if not trained_before:
            run.log(f"Teacher test accuracy {_test_phase(run, 'teacher', teacher):.2%}")
            _save(run, "teacher", teacher)
        elif "teacher_test_acc" in run.summary:  # measured before the run was resumed
            run.recorder.emit(PhaseTested(run.run_id, "teacher",
                                          run.summary["teacher_test_acc"]))
    if "baseline" in run.plan and not run.done_before("baseline") and not baseline_trained:
        _train_baseline(run, initial_student)
    train_phase(run, run.plan["student"], p.student, p.method, config.optim.lr,
                initial_student, p.labelled)
    run.log(f"Distilled student test accuracy {_test_phase(run, 'student', p.student):.2%}")
    _save(run, "student", p.student)
    settle_checkpoint(run)
    run.log(run.checkpoints.describe())
    if "baseline_test_acc" in run.summary:
        run.summary["kd_gain"] = (run.summary["student_test_acc"]
                                  - run.summary["baseline_test_acc"])


def _train_baseline(run: RunContext, initial_student: dict[str, torch.Tensor]) -> None:
    """The student alone, from the distilled student's initial weights; tested and saved."""
    p = run.p
    # a custom student is copied, not rebuilt: its file may have changed since
    baseline = (copy.deepcopy(p.student) if isinstance(p.student, CustomModel) else
                create_model(p.student.arch, p.data.input_shape, p.data.num_classes,
                             **p.student.arch_params))
    train_phase(run, run.plan["baseline"], baseline, create_method("none", 1.0),
                run.config.optim.lr, initial_student, p.labelled)
    run.log(f"Baseline (student alone) test accuracy "
            f"{_test_phase(run, 'baseline', baseline):.2%}")
    _save(run, "baseline", baseline)


def _test_phase(run: RunContext, phase: str, model: FeatureModel) -> float:
    acc = accuracy(predict(model, run.p.data.inputs("test"), run.p.device), run.p.data.y_test)
    run.summary[f"{phase}_test_acc"] = acc
    plan = run.plan.get(phase)
    run.recorder.metrics(phase, plan.steps if plan else 0, plan.epochs if plan else 0,
                         {"test/acc": acc})
    run.recorder.emit(PhaseTested(run.run_id, phase, acc))
    return acc


def _save(run: RunContext, kind: str, model: FeatureModel) -> None:
    if isinstance(model, OpaqueTeacher):  # kept as the file it is
        suffix = {"onnx": ".onnx", "torchscript": ".pt", "pt2": ".pt2"}[model.kind]
        run.recorder.save_file(kind, model.path, f"{kind}{suffix}", model.kind)
        return
    data = run.p.data
    run.recorder.save_model(kind, model, {"class_names": data.class_names, "mean": data.mean,
                                          "std": data.std})
