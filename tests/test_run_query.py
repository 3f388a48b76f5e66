"""Filter expressions of the runs table (parser, evaluation, names) and the table's values
(key paths into configs, percent units, groups with mean ± std), on rows from a real Store."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kdstudio.core.run_query import (
    MISSING,
    BoolOp,
    Comparison,
    Not,
    QueryError,
    evaluate,
    looks_like_expression,
    matching,
    names,
    parse,
    unknown_names,
)
from kdstudio.core.run_table import flatten, group_rows, key_paths, mean_std, run_value
from kdstudio.core.store import Store

ROWS = [
    {"kd_gain": 2.0, "distill.temperature": 4.0, "method": "kd", "seed": 0},
    {"kd_gain": -1.0, "distill.temperature": 8.0, "method": "dkd", "seed": 1},
    {"kd_gain": 0.5, "distill.temperature": 2.0, "method": "kd", "seed": 2},
    {"distill.temperature": 4.0, "method": "kd", "seed": 3},  # no kd_gain (failed run)
]


def ids(text: str) -> list[int]:
    return matching(parse(text), ROWS)


def test_comparisons_and_key_paths() -> None:
    assert ids("kd_gain > 0") == [0, 2]
    assert ids("kd_gain >= 0.5") == [0, 2]
    assert ids("kd_gain < 0") == [1]
    assert ids("kd_gain <= -1") == [1]
    assert ids("distill.temperature == 4") == [0, 3]
    assert ids("distill.temperature != 4") == [1, 2]
    assert ids("seed > 1.5e0") == [2, 3]
    assert ids("-2 < kd_gain") == [0, 1, 2]


def test_and_binds_tighter_than_or_and_parentheses_change_it() -> None:
    expr = parse("kd_gain > 1 or kd_gain < 0 and seed == 0")
    assert isinstance(expr, BoolOp) and expr.op == "or"
    assert matching(expr, ROWS) == [0]  # the `and` part matches no row
    assert ids("(kd_gain > 1 or kd_gain < 0) and seed == 1") == [1]
    assert ids("kd_gain > 0 and distill.temperature >= 4") == [0]
    assert ids("not seed == 0 and method == 'kd'") == [2, 3]
    assert isinstance(parse("not (seed == 0)"), Not)
    assert ids("KD_GAIN > 0 AND seed == 2".replace("KD_GAIN", "kd_gain")) == [2]


def test_text_equality_and_missing_keys() -> None:
    assert ids('method == "dkd"') == [1]
    assert ids("method != 'dkd'") == [0, 2, 3]
    # a run without the key never matches, not even with !=
    assert ids("kd_gain != 100") == [0, 1, 2]
    assert ids("nothing.here == 1") == []
    assert ids("method == 3") == []  # text against a number: no match, no error


def test_names_and_unknown_names() -> None:
    expr = parse("kd_gain > 1 and (distill.temperature >= 4 or kd_gain < 0)")
    assert names(expr) == ["kd_gain", "distill.temperature"]
    known = {"kd_gain"}
    assert unknown_names(expr, known.__contains__) == ["distill.temperature"]


@pytest.mark.parametrize(("text", "token", "words"), [
    ("kd_gain > ", "", "ends"),
    ("kd_gain 1", "1", "unexpected '1' at column 9"),
    ("kd_gain > 1 an seed == 0", "an", "unexpected 'an' at column 13"),
    ("kd_gain = 1", "=", "use =="),
    ("kd_gain > 1 $", "$", "unexpected character '$' at column 13"),
    ("(kd_gain > 1", "", "ends"),
    ("kd_gain > 1)", ")", "unexpected ')'"),
    ('method < "kd"', '"kd"', "compares numbers"),
    ("method == 'kd", "'", "unclosed quote"),
    ("", "", "empty"),
    ("seed > -x", "-", "unexpected '-'"),
])
def test_bad_filters_name_the_token(text: str, token: str, words: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(text)
    assert caught.value.token == token
    assert words in str(caught.value)


def test_expression_or_words() -> None:
    assert looks_like_expression("kd_gain > 1")
    assert looks_like_expression("seed = 1")  # an expression with an error, not words
    assert not looks_like_expression("alpha digits kd")
    assert not looks_like_expression("notes and tags")


def test_evaluate_on_booleans_and_lists() -> None:
    row = {"data.augment": True, "student.params.hidden_sizes": [16, 8], "x": math.nan}
    get = lambda name: row.get(name, MISSING)  # noqa: E731
    assert evaluate(parse("data.augment == true"), get)
    assert not evaluate(parse("data.augment == 1"), get)
    assert evaluate(parse('student.params.hidden_sizes == "[16, 8]"'), get)
    assert not evaluate(parse("x == x"), get)
    assert isinstance(parse("1 < 2"), Comparison)


def test_values_from_store_rows_in_table_units(tmp_path: Path) -> None:
    with Store(tmp_path / "h.db") as store:
        first = store.create_run({"name": "a", "seed": 0, "distill": {"temperature": 4.0,
                                  "params": {}}, "data": {"dataset": "digits"}})
        store.finish_run(first, "completed", kd_gain=0.021, student_test_acc=0.9)
        second = store.create_run({"name": "b", "seed": 1, "distill": {"temperature": 8.0},
                                   "optim": {"lr": 0.1}})
        store.finish_run(second, "completed", kd_gain=-0.01, student_test_acc=0.8)
        configs = store.run_configs()
        assert list(store.run_configs(after_id=first)) == [second]
        runs = {run["id"]: run for run in store.list_runs_brief()}
    flat = {run_id: flatten(config) for run_id, config in configs.items()}
    assert key_paths(flat.values()) == ["data.dataset", "distill.params", "distill.temperature",
                                        "name", "optim.lr", "seed"]
    assert run_value(runs[first], flat[first], "kd_gain") == pytest.approx(2.1)
    assert run_value(runs[first], flat[first], "student_test_acc") == pytest.approx(90.0)
    assert run_value(runs[second], flat[second], "distill.temperature") == 8.0
    assert run_value(runs[first], flat[first], "optim.lr") is MISSING
    rows = [{name: run_value(runs[i], flat[i], name) for name in ("kd_gain",
             "distill.temperature")} for i in (first, second)]
    assert matching(parse("kd_gain > 1 and distill.temperature >= 4"), rows) == [0]


def test_groups_have_mean_std_and_count() -> None:
    groups = group_rows([4.0, 2.0, 4.0, MISSING],
                        {"acc": [90.0, 80.0, 94.0, 70.0], "gain": [1, MISSING, None, 2]})
    assert [g.value for g in groups] == [2.0, 4.0, MISSING]
    assert [g.rows for g in groups] == [[1], [0, 2], [3]]
    mean, spread, count = groups[1].stats["acc"]
    assert (mean, spread, count) == (pytest.approx(92.0), pytest.approx(2.0), 2)
    assert groups[1].stats["gain"] == (1.0, 0.0, 1)
    assert groups[0].stats["gain"] == (None, None, 0)
    assert mean_std([1.0, None, math.nan, 3.0]) == (2.0, 1.0, 2)
    assert mean_std([]) == (None, None, 0)
