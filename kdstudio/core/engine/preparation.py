"""Before a run has a row in the history: validate the config, load the data, apply the
label budget and build the models, every bad input a ConfigError naming its key."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from kdstudio.core.config import ConfigError, RunConfig, validate
from kdstudio.core.data import Splits, prepare_data, prepare_transfer_inputs, select_labelled
from kdstudio.core.data.examples import Examples
from kdstudio.core.devices import resolve_device
from kdstudio.core.distill.methods import Method, create_method
from kdstudio.core.engine.teachers import build_model_for, build_teacher
from kdstudio.core.models import FeatureModel
from kdstudio.core.plan import RunPlan, plan_run

if TYPE_CHECKING:
    from kdstudio.core.engine.distributed import Distributed
    from kdstudio.core.engine.late_teacher import LateTeacher


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
    # KD terms' inputs when not the labelled batches (the training inputs from files when
    # a stream loader reads them)
    transfer_inputs: torch.Tensor | Examples | None
    teacher_epochs: int = 0  # what the teacher phase trains (0: loaded, or opaque)
    teacher_notes: list[str] = field(default_factory=list)  # for the run's log
    distributed: Distributed | None = None  # under torchrun: this process's rank and shard
    compiled: list[CompiledForward] = field(default_factory=list)  # compile = true
    # teacher.checkpoint is still being written (by another sweep trial): see late_teacher
    teacher_later: LateTeacher | None = None

    @property
    def two_streams(self) -> bool:
        """CE on labelled batches and the KD terms on transfer-set batches."""
        return self.transfer_inputs is not None

    @property
    def teacher_inputs(self) -> torch.Tensor | Examples:
        """What the teacher's outputs (and memory banks) are indexed by in the distillation
        phase: the transfer set, else the labelled subset, by position."""
        if self.transfer_inputs is not None:
            return self.transfer_inputs
        x = self.data.x_train
        everything = len(self.labelled) == len(self.data.y_train)
        if x is None:  # read from files
            train = self.data.inputs("train")
            return train if everything else train.subset(self.labelled)
        return x if everything else x[self.labelled]

    def plan(self) -> RunPlan:
        """The run's phases, epochs and steps for this data."""
        epoch_size = (len(self.transfer_inputs) if self.transfer_inputs is not None
                      else len(self.labelled))
        train_size = len(self.data.y_train)
        if self.distributed is not None:  # each process's steps: over its shard
            shard = self.distributed.shard
            train_size, epoch_size = shard.length(train_size), shard.length(epoch_size)
        return plan_run(self.config, train_size, epoch_size, self.teacher_epochs)


class CompileFailed(RuntimeError):
    """torch.compile raised at a model's first call; the message names `compile`."""


def with_own_code(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    """`function` called through a wrapper with a code object of its own, named `name`.

    Dynamo keeps compiled graphs, and counts recompiles against its limit, per code object:
    compiled directly, a teacher and a student of one class, and every run of a GUI session,
    would share one limit (8), and a model whose code hit it runs uncompiled from then on.
    """
    def forward(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    forward.__code__ = forward.__code__.replace(co_name=name)
    return forward


class CompiledForward:
    """A model's forward through torch.compile; its first call (the compilation) is timed
    and reported through `log` (until the engine sets it, kept in `messages`).

    Each has its own compile cache (`with_own_code`): the variants one run needs (training
    and evaluation, gradients on and off, a ragged last batch, a frozen teacher) stay well
    under dynamo's recompile limit."""

    def __init__(self, role: str, model: torch.nn.Module) -> None:
        self.role = role
        self.eager = model.forward
        self.compiled = torch.compile(with_own_code(self.eager, f"{role}_forward"))
        self.first_seconds: float | None = None
        self.messages: list[str] = []
        self.log: Callable[[str], None] = self.messages.append

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.first_seconds is not None:
            return self.compiled(*args, **kwargs)
        started = time.perf_counter()
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - any backend failure, reported by name
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise CompileFailed(f"compile: torch.compile failed on the {self.role}'s first "
                                f"step ({type(error).__name__}: {first[:160]}); set "
                                "compile = false") from None
        self.first_seconds = time.perf_counter() - started
        self.log(f"Compiled the {self.role}'s forward pass in {self.first_seconds:.1f} s "
                 "(torch.compile, first step)")
        return out


def compile_model(role: str, model: torch.nn.Module) -> CompiledForward:
    """Route `model`'s forward through torch.compile in place (the module, its parameters
    and state-dict keys unchanged)."""
    compiled = CompiledForward(role, model)
    model.forward = compiled  # type: ignore[method-assign]
    return compiled


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


def prepare(config: RunConfig, teacher_later: LateTeacher | None = None) -> Prepared:
    """Validate, load the data and build the models; raises ConfigError on any bad input.
    With `teacher_later`, the teacher is built but its checkpoint (not there yet) is
    neither checked nor loaded: the run loads it when it comes."""
    problems = validate(config, teacher_file_later=teacher_later is not None)
    if problems:
        raise ConfigError(problems)
    device = resolve_device(config.device)
    try:
        dc = config.data
        data = prepare_data(dc.dataset, dc.path, dc.params, dc.val_fraction, config.seed,
                            dc.test_fraction, dc.loader, dc.augment, dc.workers)
    except (OSError, ValueError) as error:  # a message naming its own key keeps it
        text = str(error)
        raise ConfigError([text if text.startswith("data.") else f"data: {text}"]) from None
    empty = [name for name, size in data.sizes().items() if size == 0]
    if empty:
        raise ConfigError([f"data: the {' and '.join(empty)} split is empty "
                           f"({', '.join(f'{k} {v}' for k, v in data.sizes().items())}); use "
                           "more data or change data.val_fraction / data.test_fraction"])
    labelled, transfer_inputs = label_budget(config, data)
    d = config.distill
    method = create_method(d.method, d.temperature, d.student_layer, d.teacher_layer, d.params)
    seed_everything(config.seed)
    built = (build_teacher(config, data, load=teacher_later is None) if method.uses_teacher
             else None)
    seed_everything(config.seed + 1)
    student = build_model_for("student", config.student.arch, config.student.params, data)
    teacher = built.model if built else None
    compiled = []
    if config.compile:
        compiled.append(compile_model("student", student))
        if teacher is not None:
            compiled.append(compile_model("teacher", teacher))
    return Prepared(config, device, data, teacher, student, method,
                    labelled, transfer_inputs, built.epochs if built else 0,
                    built.notes if built else [], compiled=compiled,
                    teacher_later=teacher_later)


def label_budget(config: RunConfig, data: Splits) -> tuple[torch.Tensor, torch.Tensor | None]:
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
        return labelled, data.x_train if data.x_train is not None else data.inputs("train")
    try:
        return labelled, prepare_transfer_inputs(d.transfer_dataset, d.transfer_path,
                                                 d.transfer_params, data)
    except (OSError, ValueError) as error:
        raise ConfigError([f"data.transfer_dataset: {error}"]) from None
