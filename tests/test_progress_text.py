"""Time left and time taken as text (core.progress), shared by the window and the console."""

from __future__ import annotations

import pytest

from kdstudio.core.progress import clock, seconds_left


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0:00"), (59.9, "0:59"), (61, "1:01"), (3599, "59:59"), (3600, "1:00:00"),
    (3 * 3600 + 7 * 60 + 5, "3:07:05"), (-5, "0:00"),
])
def test_clock_shows_hours_only_from_an_hour_on(seconds: float, text: str) -> None:
    assert clock(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0:00:00"), (65, "0:01:05"), (3600 + 1, "1:00:01"), (-1, "0:00:00"),
])
def test_clock_with_hours_always_has_three_fields(seconds: float, text: str) -> None:
    assert clock(seconds, hours=True) == text


def test_seconds_left_keeps_the_pace_so_far() -> None:
    assert seconds_left(10.0, 0.25) == pytest.approx(30.0)
    assert seconds_left(10.0, 1.0) == 0.0
    assert seconds_left(10.0, 0.0) is None
    assert seconds_left(0.0, -0.5) is None
