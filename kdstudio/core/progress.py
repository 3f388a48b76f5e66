"""Time left and time taken as text, for the window's progress bars and the console's."""

from __future__ import annotations


def clock(seconds: float, *, hours: bool = False) -> str:
    """Seconds as h:mm:ss, or m:ss under an hour unless `hours` asks for the hours always."""
    seconds = int(max(seconds, 0))
    whole_hours, rest = divmod(seconds, 3600)
    if whole_hours or hours:
        return f"{whole_hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{rest // 60}:{rest % 60:02d}"


def seconds_left(elapsed: float, done: float) -> float | None:
    """Seconds still to go when a fraction `done` of the work took `elapsed` seconds, at
    the same pace; None while nothing is done yet."""
    if done <= 0:
        return None
    return elapsed / done * (1.0 - done)
