"""The numeric rules of a config: one `NumberRule` per number field.

Validation checks values against these objects and the form reads its ranges from the same
objects, so the two cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kdstudio.core.text import short_number

MAX_SEED = 2**63 - 1  # SQLite's largest INTEGER; torch and numpy seed with it
MAX_THREADS = 1024
MAX_BATCH_SIZE = 2**31 - 1
MAX_EPOCHS = 100_000


@dataclass(frozen=True)
class NumberRule:
    """Allowed values of one number field.

    `low`/`high` bound the value (open bounds exclude themselves) and `text` says so in a
    problem line ("must be > 0"); `most` is an extra upper limit reported on its own
    ("must be at most 100,000").
    """

    kind: type  # int or float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    text: str = ""
    most: int | None = None

    def in_bounds(self, value: float) -> bool:
        """Whether `value` satisfies the low/high bounds (not `most`)."""
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else
                                     value <= self.high)

    def accepts(self, value: float) -> bool:
        """Whether `value` breaks no part of the rule."""
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return self.in_bounds(value) and (self.most is None or value <= self.most)

    @property
    def smallest(self) -> float | None:
        """The lowest value a widget must offer (the bound itself for an open float bound)."""
        if self.low is None:
            return None
        return self.low + 1 if self.kind is int and self.low_open else self.low

    @property
    def largest(self) -> float | None:
        """The highest value a widget must offer."""
        bounds = [b for b in (self.high, self.most) if b is not None]
        if not bounds:
            return None
        high = min(bounds)
        return high - 1 if self.kind is int and self.high_open and high == self.high else high


def _at_least(low: float, kind: type = float, note: str = "", most: int | None = None
              ) -> NumberRule:
    return NumberRule(kind, low=low, text=f">= {low:g}{note}", most=most)


SEED_RULE = NumberRule(int, low=0, most=MAX_SEED)

RULES: dict[str, NumberRule] = {
    "seed": SEED_RULE,
    "threads": _at_least(0, int, " (0 = auto)", MAX_THREADS),
    "data.batch_size": _at_least(1, int, most=MAX_BATCH_SIZE),
    "data.val_fraction": NumberRule(float, 0, 1, True, True, "between 0 and 1, exclusive"),
    "data.test_fraction": NumberRule(float, 0, 1, True, True, "between 0 and 1, exclusive"),
    "data.label_fraction": NumberRule(float, 0, 1, True, False, "in (0, 1]"),
    "data.label_count": _at_least(0, int, " (0 = use data.label_fraction)", MAX_SEED),
    "distill.temperature": NumberRule(float, low=0, low_open=True, text="> 0"),
    "distill.ce_weight": _at_least(0),
    "distill.kd_weight": _at_least(0),
    "distill.feature_weight": _at_least(0),
    "optim.lr": NumberRule(float, low=0, low_open=True, text="> 0"),
    "optim.momentum": NumberRule(float, 0, 1, False, True, "in [0, 1)"),
    "optim.weight_decay": _at_least(0),
    "optim.epochs": _at_least(1, int, most=MAX_EPOCHS),
    "optim.step_size": _at_least(0, int, most=MAX_EPOCHS),
    "optim.gamma": NumberRule(float, 0, 1, True, False, "in (0, 1]"),
    "data.workers": _at_least(0, int, " (0 = load in the training process)", MAX_THREADS),
    "teacher.epochs": _at_least(0, int, most=MAX_EPOCHS),
    "teacher.lr": _at_least(0, note=" (0 = same as optim.lr)"),
}


def value_at(config: Any, key: str) -> Any:
    """The value of a dotted key path in a RunConfig (attributes) or a config dict."""
    node = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part)
    return node


def number_problems(config: Any) -> list[str]:
    """Every number of `config` checked against its rule: bounds first, then the limits."""
    problems: list[str] = []
    for key, rule in RULES.items():
        value = value_at(config, key)
        if not rule.text or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{key}: must be a finite number (got {value})")
        elif not rule.in_bounds(value):
            problems.append(f"{key}: must be {rule.text} (got {short_number(value)})")
    seed = value_at(config, "seed")
    if isinstance(seed, int) and not SEED_RULE.accepts(seed):
        problems.append(f"seed: must be from 0 to {MAX_SEED:,} (2**63 - 1, the largest "
                        f"integer the history stores) (got {short_number(seed)})")
    for key, rule in RULES.items():
        value = value_at(config, key)
        if rule.text and rule.most is not None and isinstance(value, int) and value > rule.most:
            problems.append(f"{key}: must be at most {rule.most:,} (got {short_number(value)})")
    return problems
