"""Run configuration: dataclasses, dict and TOML load/save, `--set` overrides.

The same object is edited by the form, saved as TOML and run by `kdstudio run`. Reading
never raises on user input: wrongly typed values are listed by key path.
"""

from __future__ import annotations

import copy
import dataclasses
import tomllib
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from kdstudio.core.text import printable

OPTIMIZERS = ("sgd", "adam", "adamw")
TRANSFER_SETS = ("labelled", "all", "dataset")
SCHEDULES = ("constant", "cosine", "step", "multistep")
LOADERS = ("auto", "memory", "stream")
AUGMENTS = ("none", "crop-flip")


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
    loader: str = "auto"  # memory (tensors in memory) | stream (a torch DataLoader) | auto
    workers: int = 0  # stream: worker processes decoding batches (0 = in the training process)
    augment: str = "none"  # none | crop-flip (random crop, 4-pixel padding, horizontal flip)


@dataclass
class TeacherConfig:
    arch: str = "cnn"
    params: dict[str, Any] = field(default_factory=dict)
    checkpoint: str = ""
    epochs: int = 15
    lr: float = 0.0  # 0 means: the same as optim.lr


@dataclass
class StudentConfig:
    arch: str = "mlp"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DistillConfig:
    method: str = "kd"
    temperature: float = 4.0
    ce_weight: float = 0.5
    kd_weight: float = 0.5
    feature_weight: float = 0.0
    student_layer: str = ""
    teacher_layer: str = ""
    baseline: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    cache_teacher: bool = True  # compute the frozen teacher's outputs once, reuse every epoch
    schedules: dict[str, Any] = field(default_factory=dict)  # see distill/schedules.py


@dataclass
class OptimConfig:
    name: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True  # SGD: Nesterov momentum (false: plain momentum, as RepDistiller)
    weight_decay: float = 0.0
    epochs: int = 15
    schedule: str = "cosine"
    step_size: int = 0  # epochs between decays for 'step'; 0 means a third of the epochs
    gamma: float = 0.1
    milestones: list[int] = field(default_factory=list)  # multistep: epochs where lr *= gamma


@dataclass
class RunConfig:
    name: str = ""
    seed: int = 0
    device: str = "auto"
    autocast: bool = False  # CUDA only: bf16 where supported, else fp16 with a grad scaler
    compile: bool = False  # torch.compile the student's and teacher's forward passes
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
    if origin is list:
        item = typing.get_args(kind)[0]
        if not isinstance(value, list) or any(
                isinstance(v, bool) or not isinstance(v, item) for v in value):
            problems.append(f"{key}: must be a list of {_type_name(item).split(' ', 1)[1]}s "
                            f"(got {value!r})")
            return []
        return list(value)
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
