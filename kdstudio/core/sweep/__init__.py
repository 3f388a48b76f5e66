"""Sweeps: many runs of one base config over axes of values (grid, random, Optuna), on a
local process pool or Ray, every trial a run row of the sweep's group in the history.

- `spec`: the sweep file (`read_sweep`, `sweep_from_dict`, `plan_trials`, `group_id`);
- `trials`: a trial's config, the teacher it needs, matching earlier runs;
- `search`: grid/random lists and Optuna's ask/tell;
- `runner`: `run_sweep`; `local`, `ray_backend`: where trials run; `worker`: one trial's
  process; `events`: what a sweep reports.
"""

from kdstudio.core.sweep.events import (
    SweepEvent,
    SweepFinished,
    SweepStarted,
    TrialFinished,
    TrialStarted,
)
from kdstudio.core.sweep.runner import BACKENDS, SweepResult, run_sweep
from kdstudio.core.sweep.spec import (
    METHODS,
    METRICS,
    SweepSpec,
    Trial,
    group_id,
    plan_trials,
    read_sweep,
    sweep_from_dict,
    sweep_to_dict,
)

__all__ = ["BACKENDS", "METHODS", "METRICS", "SweepEvent", "SweepFinished", "SweepResult",
           "SweepSpec", "SweepStarted", "Trial", "TrialFinished", "TrialStarted", "group_id",
           "plan_trials", "read_sweep", "run_sweep", "sweep_from_dict", "sweep_to_dict"]
