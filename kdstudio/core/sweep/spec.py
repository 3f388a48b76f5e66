"""A sweep file: its spec, checked with one-line errors naming the file and key, and the
trials a grid or a random search expands to."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdstudio.core.config.schema import RunConfig
from kdstudio.core.plan import PHASES

METHODS = ("grid", "random", "optuna")
METRICS = tuple(f"{phase}_{what}" for phase in PHASES
                for what in ("test_acc", "best_val_acc", "last_val_acc")) + ("kd_gain",)
_KEYS = {"base", "method", "trials", "metric", "axes", "set", "name", "seed"}
_RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass
class SweepSpec:
    """What a sweep TOML holds (the [set] table is `fixed`)."""

    base: str
    method: str = "grid"
    trials: int = 0
    metric: str = "student_test_acc"
    axes: dict[str, Any] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    seed: int = 0  # of the random search's draws (not of the runs)


@dataclass(frozen=True)
class Trial:
    index: int
    overrides: dict[str, Any]


def is_range(values: Any) -> bool:
    return isinstance(values, dict)


def config_key_problem(key: str) -> str | None:
    """Why `key` is not a config key path (None when it is); a key inside a `params`-like
    table (a dict field) may be anything."""
    node: Any = RunConfig
    parts = key.split(".")
    for position, part in enumerate(parts):
        if not dataclasses.is_dataclass(node):
            return None if node is dict else f"'{'.'.join(parts[:position])}' is not a table"
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            return "not a config key"
        node = _field_kind(fields[part])
    return "is a table, not a value" if dataclasses.is_dataclass(node) else None


def _field_kind(found: dataclasses.Field[Any]) -> Any:
    """The type of a config field's default: a config table class, dict, or a value type."""
    value = (found.default_factory() if found.default_factory is not dataclasses.MISSING
             else found.default)
    if dataclasses.is_dataclass(value):
        return type(value)
    return dict if isinstance(value, dict) else type(value)


def sweep_from_dict(data: dict[str, Any], source: str = "sweep") -> SweepSpec:
    """The spec of a parsed sweep file; raises ValueError naming `source` and the key."""
    def bad(key: str, problem: str) -> ValueError:
        return ValueError(f"{source}: {key}: {problem}")

    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise bad(unknown[0], f"unknown key (expected: {', '.join(sorted(_KEYS))})")
    base = data.get("base")
    if not isinstance(base, str) or not base.strip():
        raise bad("base", "a preset name or a config path is required")
    method = data.get("method", "grid")
    if method not in METHODS:
        raise bad("method", f"must be one of {', '.join(METHODS)} (got {method!r})")
    trials = data.get("trials", 0)
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 0:
        raise bad("trials", f"must be a whole number >= 0 (got {trials!r})")
    if method != "grid" and trials < 1:
        raise bad("trials", f"must be >= 1 for method = \"{method}\" (got {trials})")
    metric = data.get("metric", "student_test_acc")
    if metric not in METRICS:
        raise bad("metric", f"unknown metric {metric!r} (choose from: {', '.join(METRICS)})")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise bad("seed", f"must be a whole number (got {seed!r})")
    name = data.get("name", "")
    if not isinstance(name, str):
        raise bad("name", f"must be a string (got {name!r})")
    axes = _table(data.get("axes", {}), "axes", bad)
    fixed = _table(data.get("set", {}), "set", bad)
    if not axes:
        raise bad("axes", "at least one axis is needed (a key with a list of values)")
    for key, values in axes.items():
        _check_axis(key, values, method, bad)
    for key in fixed:
        problem = config_key_problem(key)
        if problem:
            raise bad(f"set.{key}", problem)
        if key in axes:
            raise bad(f"set.{key}", "is also an axis")
    return SweepSpec(base=base, method=method, trials=trials, metric=metric, axes=axes,
                     fixed=fixed, name=name, seed=seed)


def _table(value: Any, key: str, bad: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(key, "must be a table")
    return _flatten(value)


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"optim": {"epochs": 2}}` and `{"optim.epochs": 2}` both give `{"optim.epochs": 2}`;
    a range table ({low, high}) stays a value."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and not set(value) & _RANGE_KEYS \
                and config_key_problem(path) is not None:
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _check_axis(key: str, values: Any, method: str, bad: Any) -> None:
    where = f"axes.{key}"
    problem = config_key_problem(key)
    if problem:
        raise bad(where, problem)
    if is_range(values):
        if method == "grid":
            raise bad(where, "a grid needs a list of values, not a range")
        extra = sorted(set(values) - _RANGE_KEYS)
        if extra:
            raise bad(where, f"unknown range key '{extra[0]}' (expected low, high, log, step)")
        low, high = values.get("low"), values.get("high")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise bad(where, "a range needs numbers low and high")
        if low >= high:
            raise bad(where, f"low must be below high (got {low} and {high})")
        if values.get("log") and low <= 0:
            raise bad(where, f"a log range needs low > 0 (got {low})")
        return
    if not isinstance(values, list) or not values:
        raise bad(where, "must be a non-empty list of values (or a range {low, high})")


def read_sweep(path: str | Path) -> SweepSpec:
    """The spec of a sweep TOML file; ValueError naming the file and the key."""
    from kdstudio.core.config import read_toml

    path = Path(path)
    data = read_toml(path)  # ValueError naming the file
    spec = sweep_from_dict(data, str(path))
    if not spec.name:
        spec.name = path.stem
    if not spec.base.endswith(".toml"):
        return spec
    base = Path(spec.base).expanduser()
    if not base.is_absolute():  # relative to the sweep file
        spec.base = str((path.parent / base).resolve())
    return spec


def sweep_to_dict(spec: SweepSpec) -> dict[str, Any]:
    """What a sweep TOML holds."""
    data: dict[str, Any] = {"base": spec.base, "method": spec.method, "metric": spec.metric}
    if spec.name:
        data["name"] = spec.name
    if spec.method != "grid":
        data["trials"] = spec.trials
    if spec.seed:
        data["seed"] = spec.seed
    data["axes"] = dict(spec.axes)
    if spec.fixed:
        data["set"] = dict(spec.fixed)
    return data


def sweep_name(spec: SweepSpec) -> str:
    return spec.name or Path(spec.base).stem


def group_id(spec: SweepSpec) -> str:
    """Stable for the same sweep content: its name and a hash of the normalised spec."""
    content = json.dumps(sweep_to_dict(spec) | {"name": sweep_name(spec)}, sort_keys=True,
                         default=str)
    digest = hashlib.sha256(content.encode()).hexdigest()[:12]
    return f"sweep:{sweep_name(spec)}:{digest}"


def plan_trials(spec: SweepSpec) -> list[Trial]:
    """Grid: every combination, axes in file order (the last varies fastest). Random:
    `trials` draws (seeded by the spec's seed), a range drawn uniformly (or log-uniformly).
    Optuna: none (suggested while running)."""
    if spec.method == "optuna":
        return []
    keys = list(spec.axes)
    if spec.method == "grid":
        combos = itertools.product(*(spec.axes[key] for key in keys))
        return [Trial(i, dict(zip(keys, combo, strict=True))) for i, combo in enumerate(combos)]
    rng = random.Random(spec.seed)
    return [Trial(i, {key: _draw(rng, spec.axes[key]) for key in keys})
            for i in range(spec.trials)]


def _draw(rng: random.Random, values: Any) -> Any:
    if not is_range(values):
        return rng.choice(values)
    low, high = values["low"], values["high"]
    integer = isinstance(low, int) and isinstance(high, int) and not values.get("log")
    if integer:
        return rng.randint(low, high)
    if values.get("log"):
        import math

        return math.exp(rng.uniform(math.log(low), math.log(high)))
    return rng.uniform(low, high)
