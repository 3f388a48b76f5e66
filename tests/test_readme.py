"""The README's config reference and command table agree with the schema and the parser."""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path
from typing import Any

from kdstudio.cli.parser import build_parser
from kdstudio.core.config import RunConfig, config_from_dict
from kdstudio.core.presets import list_presets, load_preset, preset_description

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def _config_reference() -> dict[str, Any]:
    """The TOML block of the "Config reference" section, parsed."""
    block = re.search(r"```toml\n(.*?)```", _section("Config reference"), re.S)
    assert block, "README: no ```toml block in the Config reference section"
    return tomllib.loads(block.group(1))


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def test_every_default_in_the_config_reference_is_the_schemas() -> None:
    shown = _flatten(_config_reference())
    defaults = _flatten(RunConfig().to_dict())
    unknown = sorted(set(shown) - set(defaults))
    assert not unknown, f"README config reference: keys the schema lacks: {unknown}"
    wrong = {key: (value, defaults[key]) for key, value in shown.items()
             if value != defaults[key] or type(value) is not type(defaults[key])}
    assert not wrong, f"README config reference (shown, schema default): {wrong}"


def test_the_config_reference_lists_every_key() -> None:
    missing = sorted(set(_flatten(RunConfig().to_dict())) - set(_flatten(_config_reference())))
    assert not missing, f"README config reference: keys not shown: {missing}"


def _command_rows() -> list[str]:
    """The first cell of every row of the command table."""
    rows = [line for line in _section("Command line").splitlines()
            if line.startswith("| `kdstudio")]
    assert rows, "README: no command table in the Command line section"
    return [re.split(r"(?<!\\)\|", row)[1] for row in rows]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _not_in_table(rows: list[str]) -> list[str]:
    """The commands, and the `--options` of each, that no row of `rows` names."""
    missing: list[str] = []
    for name, parser in _subcommands().items():
        own = [row for row in rows if re.search(rf"`kdstudio {re.escape(name)}(?![\w-])", row)]
        if not own:
            missing.append(name)
            continue
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help" and not any(
                        re.search(rf"{re.escape(option)}(?![\w-])", row) for row in own):
                    missing.append(f"{name} {option}")
    return missing


def test_the_command_table_lists_every_command_and_option() -> None:
    missing = _not_in_table(_command_rows())
    assert not missing, f"README command table lacks: {missing}"


def test_the_table_check_sees_a_missing_command_or_option() -> None:
    rows = _command_rows()
    without_classes = [row.replace("[--classes]", "") for row in rows]
    assert _not_in_table(without_classes) == ["show --classes"]
    without_metrics = [row for row in rows if "`kdstudio export-metrics" not in row]
    assert _not_in_table(without_metrics) == ["export-metrics"]


def _resolved(config: RunConfig) -> dict[str, Any]:
    """A config as a dict with every model's and the dataset's parameters filled in with
    their defaults, and without the name."""
    from kdstudio.core.data import DATASETS
    from kdstudio.core.models import model_defaults

    data = config.to_dict()
    data.pop("name")
    data["data"]["params"] = {**DATASETS.get(config.data.dataset).defaults,
                              **config.data.params}
    for role in ("teacher", "student"):
        part = data[role]
        part["params"] = {**model_defaults(part["arch"]), **part["params"]}
    return data


def test_an_empty_config_is_the_digits_kd_preset() -> None:
    """The README says an empty config runs digits-kd's recipe (and quotes its figures)."""
    preset, problems = config_from_dict(load_preset("digits-kd"))
    assert problems == []
    assert _resolved(RunConfig()) == _resolved(preset)


def _preset_rows() -> dict[str, str]:
    rows = {}
    for line in _section("Presets").splitlines():
        found = re.match(r"\| `([\w-]+)` \|", line)
        if found:
            rows[found.group(1)] = line
    return rows


def test_preset_descriptions_quote_the_readmes_accuracies() -> None:
    """Every accuracy a preset's description (its tooltip and `kdstudio presets` line)
    quotes is one of the figures in the README's presets table for that preset."""
    rows = _preset_rows()
    quoted = {}
    for name in list_presets():
        figures = re.findall(r"(\d+(?:\.\d+)?) %", preset_description(name))
        if figures:
            assert name in rows, f"README presets table: no row for {name}"
            table = re.findall(r"(\d+(?:\.\d+)?) %", rows[name])
            quoted[name] = [f for f in figures if f not in table]
    assert quoted, "no preset description quotes an accuracy: the check checks nothing"
    assert all(not extra for extra in quoted.values()), f"not in the README: {quoted}"
