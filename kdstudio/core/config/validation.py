"""Validation of a run config, the one check shared by `kdstudio run` and the window.

It never raises on user input: it returns every problem at once, each starting with its key
path, e.g. `distill.temperature: must be > 0 (got -1)`. Besides the numbers (see `rules`)
it checks the names against the registries, builds the models once per architecture,
parameters and data shape (cached), checks that a teacher checkpoint fits the teacher
architecture and, given the history, that a reused run's teacher saw the same dataset.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Protocol

from kdstudio.core.config.fields import method_param_rule
from kdstudio.core.config.rules import number_problems
from kdstudio.core.config.schema import (
    AUGMENTS,
    LOADERS,
    OPTIMIZERS,
    SCHEDULES,
    TRANSFER_SETS,
    ConfigError,
    DataConfig,
    RunConfig,
    config_from_dict,
)
from kdstudio.core.text import printable


class TeacherRuns(Protocol):
    """What validation needs of the history: runs with a teacher artifact (the Store)."""

    def runs_with_artifact(self, kind: str, limit: int = 500) -> list[dict[str, Any]]: ...


def _number_problems(config: RunConfig) -> list[str]:
    problems = number_problems(config)
    o, t = config.optim, config.teacher
    if t.epochs == 0 and not t.checkpoint and _uses_teacher(config):
        problems.append("teacher.epochs: must be >= 1 when no teacher.checkpoint is given (got 0)")
    if o.name not in OPTIMIZERS:
        problems.append(f"optim.name: unknown optimiser '{o.name}' (choose from: "
                        f"{', '.join(OPTIMIZERS)})")
    if o.schedule not in SCHEDULES:
        problems.append(f"optim.schedule: unknown schedule '{o.schedule}' (choose from: "
                        f"{', '.join(SCHEDULES)})")
    if o.schedule == "multistep":
        if not o.milestones:
            problems.append("optim.milestones: the multistep schedule needs the epochs where "
                            "the learning rate drops, e.g. [150, 180, 210]")
        elif any(m < 1 for m in o.milestones) or sorted(set(o.milestones)) != o.milestones:
            problems.append(f"optim.milestones: must be increasing epoch numbers >= 1 "
                            f"(got {o.milestones})")
    for key, value, allowed in (("data.loader", config.data.loader, LOADERS),
                                ("data.augment", config.data.augment, AUGMENTS)):
        if value not in allowed:
            problems.append(f"{key}: unknown value '{value}' (choose from: "
                            f"{', '.join(allowed)})")
    return problems


def _uses_teacher(config: RunConfig) -> bool:
    from kdstudio.core.distill.methods import METHODS

    return config.distill.method not in METHODS or METHODS.get(config.distill.method).uses_teacher


def _method_problems(config: RunConfig) -> list[str]:
    from kdstudio.core.distill.methods import METHODS, WEIGHT_KEYS

    d = config.distill
    if d.method not in METHODS:
        return [f"distill.method: unknown method '{d.method}' (choose from: "
                f"{', '.join(METHODS.names())})"]
    method = METHODS.get(d.method)
    problems: list[str] = []
    weights = {part: getattr(d, WEIGHT_KEYS[part]) for part in method.parts}
    if all(isinstance(w, (int, float)) and w == 0 for w in weights.values()):
        names = " + ".join(f"distill.{WEIGHT_KEYS[p]}" for p in method.parts)
        problems.append(f"distill: all loss weights are zero ({names} = 0); nothing would train")
    specs = {spec.name: spec for spec in method.params}
    for key, value in d.params.items():
        spec = specs.get(key)
        if spec is None:
            problems.append(f"distill.params.{key}: method '{d.method}' has no such parameter "
                            f"(it takes: {', '.join(specs) or 'none'})")
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            problems.append(f"distill.params.{key}: must be a number (got {value!r})")
        elif not method_param_rule(spec).in_bounds(value):
            problems.append(f"distill.params.{key}: must be {method_param_rule(spec).text} "
                            f"(got {value})")
    return problems


def data_problems(config: RunConfig) -> tuple[list[str], Any]:
    """Problems with the data section, and the dataset's description when it is usable.
    It may read the files (CIFAR's batches, a CSV table): the window calls it off its GUI
    thread and hands the result to `validate`."""
    from kdstudio.core.data import DATASETS, DataFileError, dataset_params, get_dataset

    data = config.data
    if data.dataset not in DATASETS:
        return [f"data.dataset: unknown dataset '{data.dataset}' (choose from: "
                f"{', '.join(DATASETS.names())})"], None
    try:
        params = dataset_params(data.dataset, data.params)
        dataset = get_dataset(data.dataset)
        info = dataset.describe(data.path, params)
    except (ValueError, TypeError) as error:
        key = "data.path" if isinstance(error, DataFileError) else "data.params"
        return [f"{key}: {error}"], None
    path_problem = _path_text_problem(data.path) or dataset.check_path(data.path)
    if path_problem:
        return [f"data.path: {path_problem}"], info
    return _loader_problems(data, dataset, params, info) + _transfer_problems(data, info), info


def _loader_problems(data: DataConfig, dataset: Any, params: dict[str, Any], info: Any
                     ) -> list[str]:
    """Augmentation that needs images, and a memory loader for data that does not fit."""
    from kdstudio.core.data.loaders import augment_problem

    problem = augment_problem(data.augment, info.input_shape)
    if problem:
        return [problem]
    if data.loader == "memory":
        too_big = dataset.memory_problem(data.path, params)
        if too_big:
            return [f"data.loader: {too_big}"]
    return []


def _transfer_problems(data: DataConfig, info: Any) -> list[str]:
    from kdstudio.core.data import DATASETS, dataset_params, get_dataset

    if data.transfer not in TRANSFER_SETS:
        return [f"data.transfer: unknown transfer set '{data.transfer}' (choose from: "
                f"{', '.join(TRANSFER_SETS)})"]
    if data.transfer != "dataset":
        return []
    if data.transfer_dataset not in DATASETS:
        return [f"data.transfer_dataset: unknown dataset '{data.transfer_dataset}' "
                f"(choose from: {', '.join(DATASETS.names())})"]
    try:
        dataset = get_dataset(data.transfer_dataset)
        other = dataset.describe(data.transfer_path,
                                 dataset_params(data.transfer_dataset, data.transfer_params))
    except (ValueError, TypeError) as error:
        return [f"data.transfer_params: {error}"]
    path_problem = (_path_text_problem(data.transfer_path)
                    or dataset.check_path(data.transfer_path))
    if path_problem:
        return [f"data.transfer_path: {path_problem}"]
    if tuple(other.input_shape) != tuple(info.input_shape):
        return [f"data.transfer_dataset: '{data.transfer_dataset}' gives inputs shaped "
                f"{other.input_shape}, the training data {info.input_shape}"]
    return []


def _model_problems(section: str, arch: str, params: dict[str, Any], info: Any,
                    asks_consent: bool = False):
    """Build the model on the CPU (once per architecture, parameters and data shape) to check
    its name, parameters and input shape: (problems, ModelSummary or None). A custom
    model's file is imported only when trusted; else its consent line is the problem (none
    when the caller `asks_consent` itself before running)."""
    from kdstudio.core.distill.checks import summarise_model
    from kdstudio.core.models import MODELS, model_defaults
    from kdstudio.core.registry import UnknownNameError

    try:  # a prefixed name (torchvision:NAME) says itself why it cannot be used
        MODELS.get(arch)
    except UnknownNameError as error:
        return [f"{section}.arch: {error}"], None
    code_problems, blocked = _code_problems(section, arch, params, asks_consent)
    if blocked:
        return code_problems, None
    if info is None:
        return [], None
    # a model that takes no parameters and does not build does not fit the data: its arch's
    key = f"{section}.params" if params or model_defaults(arch) else f"{section}.arch"
    try:
        problem = _model_memory_problem(arch, params, tuple(info.input_shape), info.num_classes)
        if problem:
            return [f"{key}: {problem}"], None
        summary = summarise_model(arch, params, tuple(info.input_shape), info.num_classes)
    except Exception as error:  # noqa: BLE001 - any model code may reject odd parameters
        return [f"{key}: {_first_line(error)}"], None
    if summary.output != (2, info.num_classes):  # a custom factory may ignore num_classes
        return [f"{key}: the model gives outputs shaped {list(summary.output)} "
                f"for a batch of 2; the data has {info.num_classes} classes"], None
    return [], summary


def _code_problems(section: str, arch: str, params: dict[str, Any],
                   asks_consent: bool) -> tuple[list[str], bool]:
    """(problems, whether the model must not be built) for a custom model's file."""
    from kdstudio.core.models.custom import CUSTOM, code_file, is_trusted

    if arch != CUSTOM:
        return [], False
    try:
        code = code_file(f"{section}.params.file", params)
    except ValueError as error:
        return [str(error)], True
    if code is None:
        return [f"{section}.params.file: name the Python file whose factory builds the "
                "model"], True
    if is_trusted(code.sha256):
        return [], False
    return ([] if asks_consent else [code.consent_line()]), True


def _opaque_problems(config: RunConfig, info: Any) -> list[str]:
    """An opaque teacher (`teacher.arch = ""`): a loadable file giving one output per
    class, frozen, for a method that needs its outputs only."""
    from kdstudio.core.distill.methods import METHODS
    from kdstudio.core.models.opaque import KINDS, OPAQUE_FILES, opaque_kind

    t, method = config.teacher, config.distill.method
    if not t.checkpoint:
        return [f"teacher.arch: an empty architecture means an opaque teacher: give "
                f"teacher.checkpoint ({OPAQUE_FILES})"]
    problems = _checkpoint_path_problems(t.checkpoint)
    if problems:
        return problems
    path = Path(t.checkpoint).expanduser()
    try:
        kind = opaque_kind(path)
    except (OSError, ValueError) as error:
        return [f"teacher.checkpoint: {_first_line(error)}"]
    if t.params:
        problems.append(f"teacher.params: an opaque teacher takes no parameters (got "
                        f"{', '.join(sorted(t.params))})")
    if t.epochs > 0:
        problems.append(f"teacher.epochs: an opaque teacher ({KINDS[kind]} file) is used as it "
                        f"is, never trained: set teacher.epochs = 0 (got {t.epochs})")
    cls = METHODS.get(method) if method in METHODS else None
    if cls is not None and (cls.uses_hint_layers or cls.feature_names):
        article = "an" if kind == "onnx" else "a"
        problems.append(f"distill.method: {method} needs the teacher's inner layers; "
                        f"{article} {KINDS[kind]} teacher gives only its outputs")
    if info is not None:
        stat = path.stat()
        problem = _opaque_fit(str(path), stat.st_mtime_ns, stat.st_size,
                              tuple(info.input_shape), info.num_classes)
        if problem:
            problems.append(f"teacher.checkpoint: {problem}")
    return problems


@functools.lru_cache(maxsize=8)
def _opaque_fit(path: str, _mtime_ns: int, _size: int, input_shape: tuple[int, ...],
                num_classes: int) -> str | None:
    """Load the file and run one batch: its output size against the classes."""
    import torch

    from kdstudio.core.models.opaque import load_opaque, output_problem

    try:
        with torch.random.fork_rng(devices=[]):
            return output_problem(load_opaque(path, input_shape), num_classes)
    except ValueError as error:
        return _first_line(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _model_memory_problem(arch: str, params: dict[str, Any], input_shape: tuple[int, ...],
                          num_classes: int) -> str | None:
    """Whether the model (counted on the meta device, nothing allocated) could train here:
    weights, gradients and two optimiser moments, 4 bytes each."""
    from kdstudio.core.memory import memory_problem
    from kdstudio.core.models import model_size

    count = model_size(arch, params, input_shape, num_classes).parameters
    return memory_problem(f"training {arch} with {count:,} parameters", 16 * count)


def _path_text_problem(text: str) -> str | None:
    """A path that no file system accepts (a NUL byte, a name too long), or None."""
    if "\x00" in text:
        return f"{text!r} holds a NUL byte, which no file name can"
    try:
        Path(text).expanduser().exists()
    except (OSError, ValueError, RuntimeError) as error:
        return f"cannot use {text!r} as a path ({_first_line(error)})"
    return None


def _layer_problems(config: RunConfig, student: Any, teacher: Any) -> list[str]:
    from kdstudio.core.distill.methods import METHODS

    d = config.distill
    if d.method not in METHODS or not METHODS.get(d.method).uses_hint_layers:
        return []
    problems = []
    for key, layer, model in (("student_layer", d.student_layer, student),
                              ("teacher_layer", d.teacher_layer, teacher)):
        if model is None:
            continue
        names = list(model.layers)
        if not layer:
            problems.append(f"distill.{key}: method '{d.method}' needs a layer "
                            f"(choose from: {', '.join(names)})")
        elif layer not in names:
            problems.append(f"distill.{key}: no layer '{layer}' in {model.arch} "
                            f"(choose from: {', '.join(names)})")
    return problems


def _device_problems(config: RunConfig) -> list[str]:
    from kdstudio.core.devices import DeviceError, resolve_device

    try:
        resolve_device(config.device)
    except DeviceError as error:
        return [f"device: {error}"]
    return []


@functools.cache  # importing torch._dynamo takes seconds: once, not on every form edit
def _dynamo_supported() -> bool:
    import torch

    try:
        return bool(torch._dynamo.is_dynamo_supported())
    except Exception:  # noqa: BLE001 - any failure means it cannot be used
        return False


def compile_problem() -> str | None:
    """Why `compile = true` cannot work here (torch.compile unsupported on this Python, or no
    C++ compiler for inductor), else None."""
    import shutil

    if not _dynamo_supported():
        return ("compile: torch.compile is not supported on this Python / torch build; "
                "set compile = false")
    compilers = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
    if not any(name and shutil.which(name) for name in compilers):
        return ("compile: torch.compile needs a C++ compiler (g++ or clang++, or $CXX) and "
                "none was found; install one or set compile = false")
    return None


def validate(config: RunConfig, store: TeacherRuns | None = None,
             data: tuple[list[str], Any] | None = None, asks_consent: bool = False,
             teacher_file_later: bool = False) -> list[str]:
    """Every problem with a config, one line each; empty when it can run. With `store` (the
    history), a teacher checkpoint that is a saved run's teacher must come from a run on the
    same dataset. `data`: what `data_problems` gave for this config, when already known. A
    custom model's file not trusted yet is never imported: its line says how to consent,
    unless the caller `asks_consent` itself before the run (the window).
    `teacher_file_later`: the teacher checkpoint is still being written by another run
    (a sweep's shared teacher); its file is checked when it is loaded."""
    problems = _number_problems(config)
    problems += _method_problems(config)
    problems += _device_problems(config)
    found, info = data_problems(config) if data is None else data
    problems += found
    student_problems, student = _model_problems(
        "student", config.student.arch, config.student.params, info, asks_consent)
    problems += student_problems
    teacher = None
    if _uses_teacher(config) and not config.teacher.arch:
        opaque_problems = _opaque_problems(config, info)
        problems += opaque_problems
        if not opaque_problems:
            problems += _reused_run_problems(config, store)
    elif _uses_teacher(config):
        teacher_problems, teacher = _model_problems(
            "teacher", config.teacher.arch, config.teacher.params, info, asks_consent)
        problems += teacher_problems
        path_problems = ([] if teacher_file_later
                         else _checkpoint_path_problems(config.teacher.checkpoint))
        problems += path_problems
        if config.teacher.checkpoint and not path_problems and not teacher_file_later:
            problems += _reused_run_problems(config, store)
            if info is not None and not teacher_problems and teacher is not None:
                problems += _checkpoint_fit_problems(config, info)
    problems += _layer_problems(config, student, teacher)
    if config.data.transfer != "labelled" and not _uses_teacher(config):
        problems.append(f"data.transfer: method '{config.distill.method}' has no teacher, so "
                        f"no transfer set (use transfer = \"labelled\")")
    from kdstudio.core.distill.checks import distill_problems, feature_problems

    problems += distill_problems(config) + feature_problems(config, student, teacher)
    if config.compile:
        problem = compile_problem()
        if problem:
            problems.append(problem)
    return problems


def _checkpoint_path_problems(checkpoint: str) -> list[str]:
    """The teacher file exists and is a file (its contents are checked when it is loaded)."""
    if not checkpoint:
        return []
    problem = _path_text_problem(checkpoint)
    if problem:
        return [f"teacher.checkpoint: {problem}"]
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        return [f"teacher.checkpoint: {printable(checkpoint)} is a folder, not a weight file"]
    if not path.is_file():
        return [f"teacher.checkpoint: no such file {printable(checkpoint)}"]
    return []


def _reused_run_problems(config: RunConfig, store: TeacherRuns | None) -> list[str]:
    """A checkpoint that is the teacher of a run in the history: that run's dataset."""
    if store is None:
        return []
    target = os.path.realpath(Path(config.teacher.checkpoint).expanduser())
    for run in store.runs_with_artifact("teacher", limit=100_000):
        if os.path.realpath(run["artifact_path"]) != target:
            continue
        trained_on = (run.get("config") or {}).get("data", {}).get("dataset")
        if trained_on != config.data.dataset:
            return [f"teacher.checkpoint: run #{run['id']} trained its teacher on "
                    f"{trained_on}; this run uses {config.data.dataset}"]
        return []
    return []


def _checkpoint_fit_problems(config: RunConfig, info: Any) -> list[str]:
    """The weight file's tensors fit the teacher architecture (checked once per file
    version and model)."""
    import json

    path = Path(config.teacher.checkpoint).expanduser()
    stat = path.stat()
    problem = _checkpoint_fit(str(path), stat.st_mtime_ns, stat.st_size, config.teacher.arch,
                              json.dumps(config.teacher.params, sort_keys=True, default=repr),
                              tuple(info.input_shape), info.num_classes,
                              config.teacher.epochs > 0)
    return [f"teacher.checkpoint: {problem}"] if problem else []


@functools.lru_cache(maxsize=32)
def _checkpoint_fit(path: str, _mtime_ns: int, _size: int, arch: str, params_json: str,
                    input_shape: tuple[int, ...], num_classes: int,
                    fine_tune: bool) -> str | None:
    """None when the file loads into the model; a checkpoint whose head has other classes
    loads when it is to be fine-tuned (`fine_tune`), else says so."""
    import json

    import torch

    from kdstudio.core.checkpoint import load_teacher_weights
    from kdstudio.core.models import create_model

    try:
        with torch.device("meta"):
            model = create_model(arch, input_shape, num_classes, **json.loads(params_json))
        load_teacher_weights(model, path, fine_tune, assign=True)
    except ValueError as error:
        return str(error)
    except Exception as error:  # noqa: BLE001 - e.g. a file that is not safetensors
        return f"cannot read {path}: {type(error).__name__}: {error}"
    return None


def load_config(data: dict[str, Any]) -> RunConfig:
    """Build and validate; raises ConfigError listing every problem."""
    config, problems = config_from_dict(data)
    problems += validate(config)
    if problems:
        raise ConfigError(problems)
    return config
