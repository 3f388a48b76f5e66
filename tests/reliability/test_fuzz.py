"""Fuzz: any config file and any `--set` values either give a valid RunConfig or BadInput with
one-line messages; never another exception. Valid configs survive to_toml -> reload."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import tempfile
import tomllib
import typing
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdstudio.cli import BadInput
from kdstudio.cli.training import load_run_config
from kdstudio.core.config import RunConfig, config_from_dict, validate
from kdstudio.core.data import DATASETS
from kdstudio.core.distill.methods import METHODS
from kdstudio.core.models import MODELS
from tests.helpers import tiny_config
from tests.reliability.conftest import assert_no_traceback, run_cli

FOLDER = Path(tempfile.mkdtemp(prefix="kdstudio-fuzz-"))
EXAMPLES = int(os.environ.get("KDSTUDIO_FUZZ_EXAMPLES", "150"))  # more for a long hunt
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def field_paths(cls: type, prefix: str = "") -> dict[str, Any]:
    """Every leaf key path of the config schema and its type, e.g. 'optim.lr': float."""
    paths: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        key = f"{prefix}{item.name}"
        kind = hints[item.name]
        if dataclasses.is_dataclass(kind):
            paths |= field_paths(kind, key + ".")
        else:
            paths[key] = kind
    return paths


PATHS = field_paths(RunConfig)
NAMES = {"data.dataset": DATASETS.names(), "data.transfer_dataset": DATASETS.names(),
         "teacher.arch": MODELS.names(), "student.arch": MODELS.names(),
         "distill.method": METHODS.names(), "optim.name": ["sgd", "adam", "adamw", "lion"],
         "optim.schedule": ["constant", "cosine", "step", "linear"],
         "data.transfer": ["labelled", "all", "dataset", "none"],
         "device": ["cpu", "auto", "cuda", "cuda:7", "mps", "tpu"]}

text = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", "\x1b[31m", "a\u202eb", "\x00", "~nobody/x", "/" * 5000, "a" * 300])
huge_ints = st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -1, 0])
ints = st.integers(-5, 300) | huge_ints
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 0.5, 1.0, 4.0])
scalars = ints | floats | st.booleans() | text | st.dates() | st.times()
toml_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
model_params = st.fixed_dictionaries(
    {}, optional={"hidden_sizes": st.lists(st.integers(-2, 48), max_size=3) | toml_values,
                  "channels": st.lists(st.integers(-2, 16), max_size=3) | toml_values,
                  "dropout": floats | toml_values, "width": st.integers(-2, 16) | toml_values})
data_params = st.fixed_dictionaries(
    {}, optional={"samples": ints | st.sampled_from([10**7, 10**12]) | toml_values,
                  "dims": st.integers(-1, 40) | huge_ints | toml_values,
                  "classes": st.integers(-1, 12) | huge_ints | toml_values,
                  "separation": floats | toml_values, "data_seed": ints | toml_values,
                  "as_image": st.booleans() | toml_values, "generator_seed": ints,
                  "train_limit": ints, "bogus": toml_values})
schedules = st.dictionaries(
    st.sampled_from(["ce_weight", "kd_weight", "temperature", "feature_weight", "nope"]),
    st.fixed_dictionaries({}, optional={"start": floats | toml_values, "end": floats,
                                        "epochs": ints | toml_values,
                                        "shape": st.sampled_from(["linear", "cosine", "x"]),
                                        "junk": toml_values}) | toml_values, max_size=2)


def value_for(path: str) -> st.SearchStrategy[Any]:
    """A value for one key: usually of its type (and often plausible), sometimes anything."""
    kind = PATHS[path]
    if path.endswith("params") and path.startswith(("teacher", "student")):
        typed = model_params
    elif path in ("data.params", "data.transfer_params"):
        typed = data_params
    elif path == "distill.params":
        typed = st.dictionaries(st.sampled_from(["beta", "alpha", "gamma", "x"]),
                                floats | toml_values, max_size=2)
    elif path == "distill.schedules":
        typed = schedules
    elif path in NAMES:
        typed = st.sampled_from(NAMES[path]) | text
    elif kind is bool:
        typed = st.booleans()
    elif kind is int:
        typed = ints
    elif kind is float:
        typed = floats
    elif kind is str:
        typed = text
    else:
        typed = toml_values
    return typed | toml_values


@st.composite
def config_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A TOML document: a small valid config with some keys replaced, removed or added."""
    document = tiny_config().to_dict()
    for path in draw(st.lists(st.sampled_from(sorted(PATHS)), max_size=4, unique=True)):
        node = document
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[part]
        if draw(st.integers(0, 5)) == 0:
            node.pop(leaf, None)
        else:
            node[leaf] = draw(value_for(path))
    if draw(st.integers(0, 6)) == 0:
        document[draw(st.sampled_from(["data", "colour", "optim", "teacher"]))] = draw(
            toml_values)
    return document


def toml_literal(value: Any) -> str:
    """`value` as TOML source for the right of `key = `; tables inline."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_literal(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


@st.composite
def overrides(draw: st.DrawFn) -> str:
    """A `--set` argument: a known key with a TOML literal or raw text, or junk."""
    key = draw(st.sampled_from(sorted(PATHS)) | st.text(max_size=10)
               | st.sampled_from(["data.params.samples", "name.x", "data..x", ".", "a.b.c"]))
    if draw(st.booleans()):
        raw = toml_literal(draw(value_for(key) if key in PATHS else toml_values))
    else:
        raw = draw(st.text(max_size=16) | st.sampled_from(["[1,", '"x', "{a=", "1 2", "inf",
                                                           "nan", "1e999", "0x1F", "+",
                                                           "true story", "[[[[[[[[1]]]]]]]]"]))
    separator = draw(st.sampled_from(["=", "=", "=", " = ", ""]))
    return f"{key}{separator}{raw}"


def load(data: bytes, sets: list[str]) -> RunConfig | BadInput:
    path = Path(tempfile.mkstemp(suffix=".toml", dir=FOLDER)[1])
    path.write_bytes(data)
    try:
        return load_run_config(argparse.Namespace(preset=None, config=str(path), device=None,
                                                  overrides=sets))
    except BadInput as error:
        return error
    finally:
        path.unlink()


def check_outcome(outcome: RunConfig | BadInput) -> None:
    if isinstance(outcome, BadInput):
        assert outcome.lines
        for line in outcome.lines:
            assert isinstance(line, str) and line.strip(), outcome.lines
            assert "\n" not in line and "Traceback" not in line, line
        return
    assert validate(outcome) == []
    reloaded, problems = config_from_dict(tomllib.loads(outcome.to_toml()))
    assert problems == [] and reloaded == outcome
    again = load(outcome.to_toml().encode(), [])
    assert again == outcome


@FUZZ
@given(document=config_documents(), sets=st.lists(overrides(), max_size=3))
def test_any_config_and_overrides_validate_or_give_one_line_messages(
        document: dict[str, Any], sets: list[str]) -> None:
    check_outcome(load(tomli_w.dumps(document).encode(), sets))


@settings(max_examples=EXAMPLES // 2, deadline=None)
@given(data=st.binary(max_size=300) | st.text(max_size=200).map(str.encode)
       | st.sampled_from([b"[data]\nparams = 3", b"\xef\xbb\xbfname = 1", b"a = [[[[[[[[[[[["
                          * 200, b"[[data]]\n", b"data = { params = { samples = 1e999 } }"]))
def test_junk_config_files_give_one_line_messages(data: bytes) -> None:
    check_outcome(load(data, []))


def test_a_few_fuzz_cases_through_the_real_cli(tmp_path: Path) -> None:
    """The CLI process itself: junk config, junk overrides, exit 2 and one line each."""
    junk = tmp_path / "junk.toml"
    junk.write_bytes(bytes(range(1, 128)) * 3)
    cases = [
        ["run", junk],
        ["run", "--preset", "synthetic-quick", "--set", "data.params={samples=1e999}",
         "--set", "seed=2**64", "--set", "optim=[1]"],
        ["run", "--preset", "synthetic-quick", "--set", "student.params.hidden_sizes=[[[1]]]",
         "--set", "distill.schedules.ce_weight.epochs=1e400", "--set", "threads=-1"],
    ]
    for args in cases:
        process = run_cli(*args, "--db", tmp_path / "h.db")
        assert process.returncode == 2, process.stderr
        assert_no_traceback(process)
        lines = process.stderr.strip().splitlines()
        assert lines and all(line.startswith("kdstudio: ") for line in lines), lines
    assert not (tmp_path / "h.db").exists() or run_cli("runs", "--db", tmp_path / "h.db"
                                                       ).stdout.startswith("No runs")


def test_schema_paths_cover_the_config() -> None:
    assert {"seed", "data.params", "optim.lr", "distill.schedules", "teacher.checkpoint"} <= set(
        PATHS)
    assert datetime.date(2020, 1, 1) != tiny_config()  # dates are among the fuzzed values
