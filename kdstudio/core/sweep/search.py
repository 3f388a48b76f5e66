"""Where a sweep's trials come from: a fixed list (grid, random) or Optuna's TPE sampler,
asked one trial at a time and told each result (the history is the source of truth)."""

from __future__ import annotations

from typing import Any

from kdstudio.core.sweep.spec import SweepSpec, Trial, is_range, plan_trials
from kdstudio.core.sweep.trials import get_key


class Search:
    """A planned list of trials (grid or random)."""

    lookahead = True  # trials may be taken ahead of a free worker (to find a ready one)

    def __init__(self, trials: list[Trial]) -> None:
        self.trials = list(trials)
        self.pending = list(trials)

    def planned(self) -> list[Trial]:
        return list(self.trials)

    def total(self) -> int:
        return len(self.trials)

    def skip(self, trial: Trial) -> None:
        self.pending.remove(trial)

    def next(self) -> Trial | None:
        return self.pending.pop(0) if self.pending else None

    def tell(self, trial: Trial, value: float | None) -> None:
        return None

    def exhausted(self) -> bool:
        return not self.pending


class OptunaSearch(Search):
    """Optuna's TPE sampler (maximising the metric): the group's completed runs are told
    to the study first, then trials are asked until `trials` are done."""

    lookahead = False

    def __init__(self, spec: SweepSpec, earlier: list[dict[str, Any]]) -> None:
        try:
            import optuna
        except ImportError:
            raise ValueError("method: optuna needs the optuna package "
                             "(pip install kdstudio[optuna])") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.spec = spec
        self.distributions = {key: _distribution(optuna, values)
                              for key, values in spec.axes.items()}
        self.study = optuna.create_study(direction="maximize",
                                         sampler=optuna.samplers.TPESampler(seed=spec.seed))
        told: list[Trial] = []
        for run in earlier[:spec.trials]:
            params = {key: get_key(run["config"], key) for key in spec.axes}
            value = (run.get("summary") or {}).get(spec.metric)
            try:
                self.study.add_trial(optuna.trial.create_trial(
                    params=params, distributions=self.distributions, value=value))
            except (ValueError, TypeError):  # outside the axes now: not part of this study
                continue
            told.append(Trial(len(told), params))
        super().__init__(told)
        self.pending = []
        self.asked: dict[int, Any] = {}
        self.next_index = len(told)

    def total(self) -> int:
        return self.spec.trials

    def skip(self, trial: Trial) -> None:
        return None  # told already

    def next(self) -> Trial | None:
        if self.exhausted():
            return None
        asked = self.study.ask(self.distributions)
        trial = Trial(self.next_index, dict(asked.params))
        self.asked[trial.index] = asked
        self.next_index += 1
        return trial

    def tell(self, trial: Trial, value: float | None) -> None:
        asked = self.asked.pop(trial.index, None)
        if asked is None:
            return
        if value is None:
            self.study.tell(asked, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(asked, value)

    def exhausted(self) -> bool:
        return self.next_index >= self.spec.trials


def _distribution(optuna: Any, values: Any) -> Any:
    if not is_range(values):
        return optuna.distributions.CategoricalDistribution(values)
    low, high, log = values["low"], values["high"], bool(values.get("log", False))
    step = values.get("step")
    if isinstance(low, int) and isinstance(high, int) and not isinstance(step, float):
        return optuna.distributions.IntDistribution(low, high, log=log, step=step or 1)
    return optuna.distributions.FloatDistribution(float(low), float(high), log=log,
                                                  step=None if log else step)


def make_search(spec: SweepSpec, base: dict[str, Any], earlier: list[dict[str, Any]]) -> Search:
    if spec.method == "optuna":
        return OptunaSearch(spec, earlier)
    return Search(plan_trials(spec))
