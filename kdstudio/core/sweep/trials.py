"""A trial's config (the base, the sweep's [set], the trial's values), the teacher it
needs, and the runs of the history that are the same trial."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdstudio.core.sweep.spec import SweepSpec, Trial, sweep_name


def base_config(spec: SweepSpec) -> dict[str, Any]:
    """The base as a config dict: a preset by name, else a config file."""
    from kdstudio.core.config import read_toml
    from kdstudio.core.presets import list_presets, load_preset

    if spec.base in list_presets():
        return load_preset(spec.base)
    if not spec.base.endswith(".toml") and not Path(spec.base).expanduser().is_file():
        raise ValueError(f"base: '{spec.base}' is neither a preset (choose from: "
                         f"{', '.join(list_presets())}) nor a config file")
    return read_toml(Path(spec.base).expanduser())


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = copy.deepcopy(value)


def get_key(data: dict[str, Any], key: str) -> Any:
    node: Any = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def trial_config(spec: SweepSpec, base: dict[str, Any], trial: Trial) -> dict[str, Any]:
    """The trial's config dict, normalised (every key, values coerced), with its name."""
    from kdstudio.core.config import ConfigError, config_from_dict

    data = copy.deepcopy(base)
    for key, value in (spec.fixed | trial.overrides).items():
        set_key(data, key, value)
    label = " ".join(f"{key.rsplit('.', 1)[-1]}={_short(value)}"
                     for key, value in trial.overrides.items())
    data["name"] = f"{sweep_name(spec)} #{trial.index} {label}".strip()
    config, problems = config_from_dict(data)
    if problems:
        raise ConfigError([f"trial {trial.index}: {problem}" for problem in problems])
    return config.to_dict()


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trains_teacher(config: dict[str, Any], teacher_methods: dict[str, bool]) -> bool:
    """Whether the trial trains a teacher; `teacher_methods` (method name: whether it uses a
    teacher, from `TrialFacts`) spares this process the method registry, and torch."""
    from kdstudio.core.config import config_from_dict

    method = config_from_dict(config)[0].distill.method
    uses = teacher_methods.get(method, True)  # an unknown method: as validation says
    return uses and config["teacher"]["epochs"] > 0


def teacher_key(config: dict[str, Any], teacher_methods: dict[str, bool]) -> str | None:
    """What the teacher a trial trains depends on (None: it trains none). The seed is left
    out on purpose: trials that differ in seed share one teacher, as papers do."""
    if not trains_teacher(config, teacher_methods):
        return None
    optim = {k: v for k, v in config["optim"].items() if k != "epochs"}
    if config["teacher"].get("lr"):
        optim.pop("lr", None)
    return json.dumps({"data": config["data"], "teacher": config["teacher"], "optim": optim,
                       "device": config.get("device"), "autocast": config.get("autocast")},
                      sort_keys=True, default=str)


def use_teacher(config: dict[str, Any], path: str) -> dict[str, Any]:
    """The trial's config with the teacher loaded from `path` (another trial's teacher)."""
    config = copy.deepcopy(config)
    config["teacher"]["checkpoint"] = path
    config["teacher"]["epochs"] = 0
    return config


def same_trial(run: dict[str, Any], config: dict[str, Any], axes: list[str]) -> bool:
    """Whether a run of the sweep's group is this trial: the same value on every axis."""
    return all(get_key(run["config"], key) == get_key(config, key) for key in axes)


@dataclass(frozen=True)
class TrialFacts:
    """What checking a sweep's trials finds out with torch imported: their problems (one
    line each, naming the trial), whether each method uses a teacher, and the device type
    `auto` is here. A local sweep has its first trial process find them (it imports torch
    anyway), so that the sweep's own process need not."""

    problems: list[str]
    teacher_methods: dict[str, bool]
    auto_device: str

    def raise_problems(self) -> None:
        from kdstudio.core.config import ConfigError

        if self.problems:
            raise ConfigError(self.problems)


def labelled_trials(spec: SweepSpec, base: dict[str, Any],
                    trials: list[Trial]) -> list[tuple[str, dict[str, Any]]]:
    """(how a problem names the trial, its config) for each trial."""
    return [(f"trial {trial.index} ({_label(trial)})", trial_config(spec, base, trial))
            for trial in trials]


def trial_facts(labelled: list[tuple[str, dict[str, Any]]]) -> TrialFacts:
    """Validate every trial (stopping after 5 problems) and learn the facts; imports torch."""
    from kdstudio.core.config import config_from_dict, validate
    from kdstudio.core.devices import resolve_device
    from kdstudio.core.distill.methods import METHODS, list_methods

    problems: list[str] = []
    for label, data in labelled:
        config, _ = config_from_dict(data)
        problems += [f"{label}: {problem}" for problem in validate(config)]
        if len(problems) >= 5:
            break
    return TrialFacts(problems, {name: bool(METHODS.get(name).uses_teacher)
                                 for name in list_methods()}, resolve_device("auto").type)


def _label(trial: Trial) -> str:
    return ", ".join(f"{key}={_short(value)}" for key, value in trial.overrides.items())
