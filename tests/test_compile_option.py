"""compile = true: metrics match the eager run, the compile time is logged, and an
unavailable backend or a failing compile is refused with a message naming `compile`."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from kdstudio.core.config import validate
from kdstudio.core.config import validation as validation_module
from kdstudio.core.engine import run
from kdstudio.core.engine.preparation import CompileFailed, compile_model
from kdstudio.core.events import Event, Log
from kdstudio.core.store import Store
from tests.helpers import tiny_config


def _short(compile_models: bool):
    config = tiny_config()
    config.teacher.epochs = 1
    config.optim.epochs = 1
    config.compile = compile_models
    return config


def _metrics(store: Store, run_id: int) -> dict[tuple, float]:
    return {(r["phase"], r["step"], r["name"]): r["value"]
            for r in store.metrics(run_id) if r["name"] != "samples_per_s"}


@pytest.mark.skipif(validation_module.compile_problem() is not None,
                    reason="torch.compile unavailable here")
def test_compiled_run_matches_the_eager_run_and_logs_its_compile_time(tmp_path: Path) -> None:
    events: list[Event] = []
    with Store(tmp_path / "h.db") as store:
        eager = run(_short(False), store)
        compiled = run(_short(True), store, events.append)
        assert eager.status == compiled.status == "completed", compiled.error
        a, b = _metrics(store, eager.run_id), _metrics(store, compiled.run_id)
        assert len(a) > 20 and a.keys() == b.keys()
        for key, value in a.items():
            assert b[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    lines = [e.message for e in events if isinstance(e, Log)]
    assert any(line.startswith("Compiled the student's forward pass in ") for line in lines)
    assert any(line.startswith("Compiled the teacher's forward pass in ") for line in lines)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.skipif(validation_module.compile_problem() is not None,
                    reason="torch.compile unavailable here")
def test_compiled_runs_of_one_session_stay_under_the_recompile_limit(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Two runs in one process (as the GUI does), teacher and student of one class, other
    sizes in the second run, a ragged last batch (144 training examples in batches of 50),
    training and evaluation: no model reaches dynamo's recompile limit."""
    records = _Records()
    dynamo_log = logging.getLogger("torch._dynamo")
    dynamo_log.addHandler(records)
    events: list[Event] = []
    try:
        with Store(tmp_path / "h.db") as store:
            for index, (teacher, student) in enumerate(((32, 8), (24, 12))):
                config = tiny_config()
                config.name = f"compiled-{index}"
                config.compile = True
                config.data.batch_size = 50
                config.teacher.params = {"hidden_sizes": [teacher]}
                config.student.params = {"hidden_sizes": [student]}
                result = run(config, store, events.append)
                assert result.status == "completed", result.error
    finally:
        dynamo_log.removeHandler(records)
    printed = capfd.readouterr().err
    assert "recompile_limit" not in printed and "recompile limit" not in printed.lower()
    assert not [m for m in records.messages if "recompile" in m.lower()], records.messages
    compiled = [e.message for e in events if isinstance(e, Log)
                and e.message.startswith("Compiled the ")]
    assert len(compiled) == 4  # teacher and student in each run, each compiled afresh


@pytest.fixture(autouse=True)
def _fresh_compile_check():
    """The dynamo check is cached per process; these tests change what it looks at."""
    validation_module._dynamo_supported.cache_clear()
    yield
    validation_module._dynamo_supported.cache_clear()


def test_compile_is_refused_without_a_cpp_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    assert validate(_short(True)) == []
    monkeypatch.setenv("CXX", "")
    monkeypatch.setattr("shutil.which", lambda name: None)
    problems = validate(_short(True))
    assert problems == [p for p in problems if p.startswith("compile: ")] and len(problems) == 1
    assert "C++ compiler" in problems[0]
    assert validate(_short(False)) == []  # off: not checked


def test_compile_is_refused_where_dynamo_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch._dynamo, "is_dynamo_supported", lambda: False)
    problem = validation_module.compile_problem()
    assert problem is not None and problem.startswith("compile: ") and "not supported" in problem


def test_a_compile_failure_at_the_first_step_names_compile() -> None:
    model = torch.nn.Linear(3, 2)

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("backend exploded\nlong traceback text")

    compiled = compile_model("student", model)
    compiled.compiled = broken
    with pytest.raises(CompileFailed, match=r"^compile: torch.compile failed on the student's "
                                            r"first step \(RuntimeError: backend exploded\)"):
        model(torch.zeros(1, 3))
    assert compiled.messages == [] and compiled.first_seconds is None
