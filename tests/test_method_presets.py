"""Each method's preset runs end to end from the CLI, shortened: one epoch per phase, no
baseline, a narrower teacher (the method's own settings stay as the preset has them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdstudio.cli import main
from kdstudio.core.config import load_config
from kdstudio.core.distill.methods import METHODS
from kdstudio.core.presets import list_presets, load_preset
from kdstudio.core.store import Store

NEW_METHODS = ["at", "crd", "dist", "dkd", "lskd", "nst", "pkt", "rkd", "sp"]


def test_every_new_method_has_a_valid_preset() -> None:
    for method in NEW_METHODS:
        config = load_config(load_preset(f"{method}-mnist1d"))
        assert config.distill.method == method
        assert config.name == f"{method}-mnist1d"


@pytest.mark.parametrize("method", NEW_METHODS)
def test_method_preset_runs_end_to_end(tmp_path: Path, method: str, capsys) -> None:
    db = tmp_path / "h.db"
    code = main(["run", "--preset", f"{method}-mnist1d", "--db", str(db), "--quiet",
                 "--set", "teacher.epochs=1", "--set", "optim.epochs=1",
                 "--set", "distill.baseline=false", "--set", "teacher.params.channels=[8, 8, 8]"])
    assert code == 0, capsys.readouterr()
    with Store(db) as store:
        run = store.list_runs()[0]
        assert run["status"] == "completed" and run["method"] == method
        assert 0.1 < run["student_test_acc"] <= 1.0
        parts = {row["name"] for row in store.metrics(run["id"], phase="student")}
    expected = {f"loss/{part}" for part in METHODS.get(method).parts}
    assert expected <= parts
    assert ("sched/kd_weight" in parts) == (method == "dkd")  # DKD's preset warms KD up


def test_presets_cover_every_registered_method() -> None:
    presets = list_presets()
    for method in set(METHODS.names()) - {"none"}:
        assert any(name.startswith(f"{method}-") or name.endswith(f"-{method}")
                   for name in presets), method
