"""Debiased exponential moving average, as TensorBoard smooths its scalar charts.

`s_t = w * s_{t-1} + (1 - w) * v_t` starting from `s_0 = 0`, shown as `s_t / (1 - w^n)`
where n counts the values since the last reset, so the first points are not pulled to 0.
Non-finite values (NaN marks a gap between phases) pass through and restart the average.
No Qt here: the live view and the tests use it alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def debiased_ema(values: Iterable[float], weight: float) -> list[float]:
    """The smoothed copy of `values` for a weight in [0, 1); 0 returns the values unchanged."""
    series = SmoothedSeries(weight)
    series.extend(values)
    return series.smoothed


class SmoothedSeries:
    """Raw values plus their debiased EMA, extended point by point (O(1) per new point)."""

    def __init__(self, weight: float = 0.0) -> None:
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"smoothing weight must be in [0, 1) (got {weight})")
        self.weight = weight
        self.raw: list[float] = []
        self.smoothed: list[float] = []
        self._last = 0.0
        self._count = 0

    def extend(self, values: Iterable[float]) -> None:
        for value in values:
            self.append(value)

    def append(self, value: float) -> None:
        self.raw.append(value)
        if not math.isfinite(value):
            self.smoothed.append(value)
            self._last, self._count = 0.0, 0
            return
        self._last = self._last * self.weight + (1.0 - self.weight) * value
        self._count += 1
        self.smoothed.append(self._last / (1.0 - self.weight ** self._count))

    def set_weight(self, weight: float) -> None:
        """Change the weight and recompute every smoothed point."""
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"smoothing weight must be in [0, 1) (got {weight})")
        raw = self.raw
        self.weight = weight
        self.clear()
        self.extend(raw)

    def clear(self) -> None:
        self.raw, self.smoothed = [], []
        self._last, self._count = 0.0, 0
