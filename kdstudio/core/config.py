"""Run configuration: dataclasses, TOML load/save, `--set` overrides and validation.

The same object is edited by the form, saved as TOML and run by `kdstudio run`.
Validation never raises on user input: it returns every problem at once, each starting
with its key path, e.g. `distill.temperature: must be > 0 (got -1)`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import tomllib
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from kdstudio.core.text import printable, short_number

OPTIMIZERS = ("sgd", "adam", "adamw")
TRANSFER_SETS = ("labelled", "all", "dataset")
SCHEDULES = ("constant", "cosine", "step")
MAX_SEED = 2**63 - 1  # SQLite's largest INTEGER; torch and numpy seed with it
MAX_THREADS = 1024
MAX_BATCH_SIZE = 2**31 - 1
MAX_EPOCHS = 100_000


@dataclass
class DataConfig:
    dataset: str = "digits"
    path: str = ""
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    batch_size: int = 64
    params: dict[str, Any] = field(default_factory=dict)
    label_fraction: float = 1.0  # share of training examples whose labels the student uses
    label_count: int = 0  # > 0: exactly this many labelled examples (overrides the fraction)
    transfer: str = "labelled"  # KD terms on: labelled | all (training inputs) | dataset
    transfer_dataset: str = ""  # for transfer = "dataset": its inputs only, labels ignored
    transfer_path: str = ""
    transfer_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TeacherConfig:
    arch: str = "cnn"
    params: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = ""
    epochs: int = 10
    lr: float = 0.0  # 0 means: the same as optim.lr


@dataclass
class StudentConfig:
    arch: str = "mlp"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DistillConfig:
    method: str = "kd"
    temperature: float = 4.0
    ce_weight: float = 1.0
    kd_weight: float = 1.0
    feature_weight: float = 0.0
    student_layer: str = ""
    teacher_layer: str = ""
    baseline: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    cache_teacher: bool = True  # compute the frozen teacher's outputs once, reuse every epoch
    schedules: dict[str, Any] = field(default_factory=dict)  # see distill/schedules.py


@dataclass
class OptimConfig:
    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    epochs: int = 10
    schedule: str = "cosine"
    step_size: int = 0  # epochs between decays for 'step'; 0 means a third of the epochs
    gamma: float = 0.1


@dataclass
class RunConfig:
    name: str = ""
    seed: int = 0
    device: str = "auto"
    autocast: bool = False  # CUDA only: bf16 where supported, else fp16 with a grad scaler
    threads: int = 0  # CPU threads for training; 0 = auto (1 for small models)
    keep_checkpoints: bool = False  # keep the resumable checkpoint once the run completes
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def copy(self) -> RunConfig:
        return copy.deepcopy(self)


class ConfigError(ValueError):
    """Raised with every problem of a config; `problems` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# ---------------------------------------------------------------- dict <-> dataclasses


def _type_name(kind: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            dict: "a table"}.get(kind, str(kind))


def _coerce(value: Any, kind: Any, key: str, problems: list[str]) -> Any:
    """Check a TOML value against a field type; ints are accepted where floats are."""
    origin = typing.get_origin(kind) or kind
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{key}: must be {_type_name(dict)} (got {value!r})")
            return {}
        return dict(value)
    if kind is bool:
        if not isinstance(value, bool):
            problems.append(f"{key}: must be true or false (got {value!r})")
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        problems.append(f"{key}: must be {_type_name(kind)} (got {value!r})")
    return value


def _build(cls: type, data: Any, prefix: str, problems: list[str]) -> Any:
    if not isinstance(data, dict):
        problems.append(f"{prefix or 'config'}: must be a table (got {data!r})")
        return cls()
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else key
            problems.append(f"{where}: unknown key (expected one of: {', '.join(sorted(names))})")
    for item in dataclasses.fields(cls):
        if item.name not in data:
            continue
        key = f"{prefix}.{item.name}" if prefix else item.name
        kind = hints[item.name]
        if dataclasses.is_dataclass(kind):
            values[item.name] = _build(kind, data[item.name], key, problems)
        else:
            values[item.name] = _coerce(data[item.name], kind, key, problems)
    return cls(**values)


def config_from_dict(data: dict[str, Any]) -> tuple[RunConfig, list[str]]:
    """A RunConfig and the type problems found; wrongly typed values keep their defaults."""
    problems: list[str] = []
    config = _build(RunConfig, data, "", problems)
    if problems:
        config = _build(RunConfig, _drop_bad(data, problems), "", [])
    return config, problems


def _drop_bad(data: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    cleaned = copy.deepcopy(data)
    for problem in problems:
        path = problem.split(":", 1)[0].split(".")
        node = cleaned
        for part in path[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return cleaned


def parse_override(text: str) -> tuple[list[str], Any]:
    """`key.path=value` -> (["key", "path"], value); value parsed as TOML, else a string.

    A bare word (`name=my run`) is taken as a string; a value that starts like a TOML
    number, array, table or quoted string but does not parse is an error, not a string.
    """
    if "=" not in text:
        raise ValueError(f"--set {text}: expected key.path=value")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if not key or any(not part for part in key.split(".")):
        raise ValueError(f"--set {text}: expected key.path=value")
    try:
        document = tomllib.loads(f"v = {raw}")
    except tomllib.TOMLDecodeError as error:
        if not raw.startswith(_TOML_VALUE_STARTS):
            return key.split("."), raw
        raise ValueError(f"--set {key}={raw}: the value is not valid TOML ({_reason(error)}); "
                         f"a string with spaces or symbols needs quotes: "
                         f"--set '{key}=\"...\"'") from None
    except RecursionError:
        raise ValueError(f"--set {key}: the value is nested too deeply") from None
    if set(document) != {"v"}:
        raise ValueError(f"--set {key}={raw}: the value must be one TOML value, not several "
                         "lines of TOML")
    return key.split("."), document["v"]


_TOML_VALUE_STARTS = ('"', "'", "[", "{", "+", "-", ".", *"0123456789")


def _reason(error: tomllib.TOMLDecodeError) -> str:
    """The parser's complaint without its position, which refers to our `v = ...` line."""
    return str(error).split(" (at ", 1)[0]


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each `key.path=value` in a nested dict (copied); raises ValueError on bad syntax."""
    result = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"--set {text}: '{part}' is not a table")
            node = child
        node[path[-1]] = value
    return result


MAX_CONFIG_BYTES = 1_000_000  # a config is a few kB; more is a wrong file


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file; raises ValueError with a one-line message naming the file."""
    file = Path(path)
    name = printable(file)
    try:
        if file.is_dir():
            raise ValueError(f"{name}: is a folder, not a config file")
        with file.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ValueError(f"{name}: no such config file") from None
    except OSError as error:
        raise ValueError(f"{name}: cannot read ({error.strerror or error})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError(f"{name}: too large for a config file (over "
                         f"{MAX_CONFIG_BYTES // 1_000_000} MB); is it the right file?")
    return parse_toml_bytes(data, name)


def parse_toml_bytes(data: bytes, name: str) -> dict[str, Any]:
    """A TOML document from the bytes of file `name`; raises ValueError naming it."""
    if b"\x00" in data:
        raise ValueError(f"{name}: a binary file, not a TOML config (it holds NUL bytes)")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise ValueError(f"{name}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset "
                         f"{error.start}); a config must be a UTF-8 TOML file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{name}: not valid TOML ({error})") from None
    except RecursionError:
        raise ValueError(f"{name}: not valid TOML (nested too deeply)") from None


def save_toml(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(config.to_toml(), encoding="utf-8")


# ---------------------------------------------------------------- validation


def _number_problems(config: RunConfig) -> list[str]:
    problems: list[str] = []

    def check(key: str, value: float, ok: bool, rule: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{key}: must be a finite number (got {value})")
        elif not ok:
            problems.append(f"{key}: must be {rule} (got {short_number(value)})")

    d, o, t = config.distill, config.optim, config.teacher
    check("threads", config.threads, config.threads >= 0, ">= 0 (0 = auto)")
    check("data.batch_size", config.data.batch_size, config.data.batch_size >= 1, ">= 1")
    check("data.val_fraction", config.data.val_fraction, 0 < config.data.val_fraction < 1,
          "between 0 and 1, exclusive")
    check("data.test_fraction", config.data.test_fraction, 0 < config.data.test_fraction < 1,
          "between 0 and 1, exclusive")
    check("data.label_fraction", config.data.label_fraction,
          0 < config.data.label_fraction <= 1, "in (0, 1]")
    check("data.label_count", config.data.label_count, config.data.label_count >= 0,
          ">= 0 (0 = use data.label_fraction)")
    check("distill.temperature", d.temperature, d.temperature > 0, "> 0")
    for name in ("ce_weight", "kd_weight", "feature_weight"):
        value = getattr(d, name)
        check(f"distill.{name}", value, value >= 0, ">= 0")
    check("optim.lr", o.lr, o.lr > 0, "> 0")
    check("optim.momentum", o.momentum, 0 <= o.momentum < 1, "in [0, 1)")
    check("optim.weight_decay", o.weight_decay, o.weight_decay >= 0, ">= 0")
    check("optim.epochs", o.epochs, o.epochs >= 1, ">= 1")
    check("optim.step_size", o.step_size, o.step_size >= 0, ">= 0")
    check("optim.gamma", o.gamma, 0 < o.gamma <= 1, "in (0, 1]")
    check("teacher.epochs", t.epochs, t.epochs >= 0, ">= 0")
    check("teacher.lr", t.lr, t.lr >= 0, ">= 0 (0 = same as optim.lr)")
    problems += _limit_problems(config)
    if t.epochs == 0 and not t.checkpoint and _uses_teacher(config):
        problems.append("teacher.epochs: must be >= 1 when no teacher.checkpoint is given (got 0)")
    if o.name not in OPTIMIZERS:
        problems.append(f"optim.name: unknown optimiser '{o.name}' (choose from: "
                        f"{', '.join(OPTIMIZERS)})")
    if o.schedule not in SCHEDULES:
        problems.append(f"optim.schedule: unknown schedule '{o.schedule}' (choose from: "
                        f"{', '.join(SCHEDULES)})")
    return problems


def _limit_problems(config: RunConfig) -> list[str]:
    """The seed's range, and upper bounds on the integers that size a run."""
    problems = []
    if isinstance(config.seed, int) and not 0 <= config.seed <= MAX_SEED:
        problems.append(f"seed: must be from 0 to {MAX_SEED:,} (2**63 - 1, the largest "
                        f"integer the history stores) (got {short_number(config.seed)})")
    d, o, t = config.data, config.optim, config.teacher
    for key, value, most in (
        ("threads", config.threads, MAX_THREADS), ("data.batch_size", d.batch_size, MAX_BATCH_SIZE),
        ("data.label_count", d.label_count, MAX_SEED), ("optim.epochs", o.epochs, MAX_EPOCHS),
        ("optim.step_size", o.step_size, MAX_EPOCHS), ("teacher.epochs", t.epochs, MAX_EPOCHS),
    ):
        if isinstance(value, int) and value > most:
            problems.append(f"{key}: must be at most {most:,} (got {short_number(value)})")
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
        elif (spec.minimum is not None and value < spec.minimum) or (
            spec.maximum is not None and value > spec.maximum
        ):
            problems.append(f"distill.params.{key}: must be in [{spec.minimum}, {spec.maximum}] "
                            f"(got {value})")
    return problems


def _data_problems(config: RunConfig):
    """Problems with the data section, and the dataset's description when it is usable."""
    from kdstudio.core.data import DATASETS, dataset_params, get_dataset

    data = config.data
    if data.dataset not in DATASETS:
        return [f"data.dataset: unknown dataset '{data.dataset}' (choose from: "
                f"{', '.join(DATASETS.names())})"], None
    try:
        params = dataset_params(data.dataset, data.params)
        dataset = get_dataset(data.dataset)
        info = dataset.describe(data.path, params)
    except (ValueError, TypeError) as error:
        return [f"data.params: {error}"], None
    path_problem = _path_text_problem(data.path) or dataset.check_path(data.path)
    if path_problem:
        return [f"data.path: {path_problem}"], info
    return _transfer_problems(data, info), info


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


def _model_problems(section: str, arch: str, params: dict[str, Any], info: Any):
    """Build the model on the CPU (once per architecture, parameters and data shape) to check
    its name, parameters and input shape: (problems, ModelSummary or None)."""
    from kdstudio.core.distill.checks import summarise_model
    from kdstudio.core.models import MODELS

    if arch not in MODELS:
        return [f"{section}.arch: unknown model '{arch}' (choose from: "
                f"{', '.join(MODELS.names())})"], None
    if info is None:
        return [], None
    try:
        problem = _model_memory_problem(arch, params, tuple(info.input_shape), info.num_classes)
        if problem:
            return [f"{section}.params: {problem}"], None
        summary = summarise_model(arch, params, tuple(info.input_shape), info.num_classes)
    except Exception as error:  # noqa: BLE001 - any model code may reject odd parameters
        return [f"{section}.params: {_first_line(error)}"], None
    return [], summary


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


@functools.lru_cache(maxsize=64)
def _model_parameter_count(arch: str, params_json: str, input_shape: tuple[int, ...],
                           num_classes: int) -> int:
    import json

    import torch

    from kdstudio.core.models import create_model

    with torch.device("meta"):
        model = create_model(arch, input_shape, num_classes, **json.loads(params_json))
    return sum(p.numel() for p in model.parameters())


def _model_memory_problem(arch: str, params: dict[str, Any], input_shape: tuple[int, ...],
                          num_classes: int) -> str | None:
    """Whether the model (counted on the meta device, nothing allocated) could train here:
    weights, gradients and two optimiser moments, 4 bytes each."""
    import json

    from kdstudio.core.memory import memory_problem

    params_json = json.dumps(params, sort_keys=True, default=repr)
    count = _model_parameter_count(arch, params_json, input_shape, num_classes)
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


def validate(config: RunConfig) -> list[str]:
    """Every problem with a config, one line each; empty when it can run."""
    problems = _number_problems(config)
    problems += _method_problems(config)
    problems += _device_problems(config)
    data_problems, info = _data_problems(config)
    problems += data_problems
    student_problems, student = _model_problems(
        "student", config.student.arch, config.student.params, info)
    problems += student_problems
    teacher = None
    if _uses_teacher(config):
        teacher_problems, teacher = _model_problems(
            "teacher", config.teacher.arch, config.teacher.params, info)
        problems += teacher_problems
        problems += _checkpoint_path_problems(config.teacher.checkpoint)
    problems += _layer_problems(config, student, teacher)
    if config.data.transfer != "labelled" and not _uses_teacher(config):
        problems.append(f"data.transfer: method '{config.distill.method}' has no teacher, so "
                        f"no transfer set (use transfer = \"labelled\")")
    from kdstudio.core.distill.checks import distill_problems, feature_problems

    problems += distill_problems(config) + feature_problems(config, student, teacher)
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


def load_config(data: dict[str, Any]) -> RunConfig:
    """Build and validate; raises ConfigError listing every problem."""
    config, problems = config_from_dict(data)
    problems += validate(config)
    if problems:
        raise ConfigError(problems)
    return config
