"""A local sweep's trials are checked by its first trial process (which imports torch
anyway), so that the sweep's own process never imports torch; when that process dies, the
sweep checks them itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kdstudio.core.devices import resolve_device
from kdstudio.core.sweep import local, read_sweep
from kdstudio.core.sweep.local import LocalBackend
from kdstudio.core.sweep.search import make_search
from kdstudio.core.sweep.trials import base_config, labelled_trials
from tests.test_sweep import write_base, write_sweep

SCRIPT = """
import json, sys
from kdstudio.core.config import ConfigError
from kdstudio.core.sweep import read_sweep, run_sweep
out = {}
try:
    run_sweep(read_sweep(sys.argv[1]), sys.argv[3], workers=2)
except ConfigError as error:
    out["problems"] = error.problems
out["torch_after_bad"] = "torch" in sys.modules
result = run_sweep(read_sweep(sys.argv[2]), sys.argv[3], workers=2)
out["completed"] = result.completed
out["torch_after_good"] = "torch" in sys.modules
print(json.dumps(out))
"""


def test_a_local_sweep_reports_bad_trials_and_runs_without_importing_torch_itself(
        tmp_path: Path) -> None:
    write_base(tmp_path)
    bad = write_sweep(tmp_path, '[axes]\n"optim.epochs" = [2, -1]\n').rename(
        tmp_path / "bad.toml")
    good = write_sweep(tmp_path, '[axes]\n"distill.temperature" = [2.0, 4.0]\n')
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(bad), str(good),
                           str(tmp_path / "h.db")], capture_output=True, text=True,
                          env=local.worker_env(1), timeout=240)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(out["problems"]) == 1
    assert out["problems"][0].startswith("trial 1 (optim.epochs=-1): optim.epochs")
    assert out["completed"] == 2
    assert out["torch_after_bad"] is False
    assert out["torch_after_good"] is False


def test_the_checking_process_gives_the_facts_or_none_when_it_dies(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_base(tmp_path)
    spec = read_sweep(write_sweep(tmp_path, '[axes]\n"optim.epochs" = [2, -1]\n'))
    base = base_config(spec)
    labelled = labelled_trials(spec, base, make_search(spec, base, []).planned())

    backend = LocalBackend(1)
    try:
        facts = backend.check(labelled)
    finally:
        backend.close()
    assert facts is not None
    assert [line.split(":")[0] for line in facts.problems] == ["trial 1 (optim.epochs=-1)"]
    assert facts.teacher_methods["kd"] is True and facts.teacher_methods["none"] is False
    assert facts.auto_device == resolve_device("auto").type

    monkeypatch.setattr(local, "worker_command",
                        lambda: [sys.executable, "-c", "raise SystemExit(3)"])
    dying = LocalBackend(1)
    try:
        assert dying.check(labelled) is None
        assert not dying.has_idle()
    finally:
        dying.close()
