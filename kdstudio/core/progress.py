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


class TimeEstimate:
    """Progress and time left of a run by measured time, not by steps.

    Each phase's seconds per step come from its own steps; a phase not started yet is
    priced at the pace seen so far times its relative `step_cost`; a phase of 0 steps (a
    cached teacher) costs nothing. Paused intervals are left out of every time. All times
    are in seconds on one clock given by the caller."""

    def __init__(self, phase_steps: dict[str, int],
                 step_cost: dict[str, float] | None = None) -> None:
        self.phase_steps = {name: max(int(steps), 0) for name, steps in phase_steps.items()}
        self.step_cost = dict(step_cost or {})
        self.started: dict[str, float] = {}  # active-clock start of each phase
        self.done_steps: dict[str, int] = {}
        self.spent: dict[str, float] = {}  # active seconds up to the phase's last step
        self.paused_total = 0.0
        self.paused_since: float | None = None

    def active(self, now: float) -> float:
        """`now` on the clock that stands still while paused."""
        if self.paused_since is not None:
            now = min(now, self.paused_since)
        return now - self.paused_total

    def pause(self, now: float) -> None:
        if self.paused_since is None:
            self.paused_since = now

    def resume(self, now: float) -> None:
        if self.paused_since is not None:
            self.paused_total += max(now - self.paused_since, 0.0)
            self.paused_since = None

    def phase_started(self, phase: str, now: float) -> None:
        self.started[phase] = self.active(now)
        self.done_steps.setdefault(phase, 0)
        self.spent.setdefault(phase, 0.0)

    def step(self, phase: str, step: int, now: float) -> None:
        """`step` steps of `phase` are done at `now`."""
        if phase not in self.started:
            self.phase_started(phase, now)
        self.done_steps[phase] = step
        self.spent[phase] = max(self.active(now) - self.started[phase], 0.0)

    def phase_finished(self, phase: str, now: float) -> None:
        self.step(phase, self.phase_steps.get(phase, self.done_steps.get(phase, 0)), now)

    def seconds_per_step(self, phase: str) -> float | None:
        """Measured pace of `phase`, else the pace of the measured phases scaled by the
        relative step costs; None while no step anywhere is done."""
        done = self.done_steps.get(phase, 0)
        if done > 0:
            return self.spent[phase] / done
        paces = [(self.spent[name] / steps, self.step_cost.get(name, 1.0))
                 for name, steps in self.done_steps.items() if steps > 0]
        if not paces:
            return None
        per_unit = sum(pace / cost for pace, cost in paces) / len(paces)
        return per_unit * self.step_cost.get(phase, 1.0)

    def phase_left(self, phase: str) -> float | None:
        """Seconds `phase` still needs; None while its pace is unknown."""
        left_steps = self.phase_steps.get(phase, 0) - self.done_steps.get(phase, 0)
        if left_steps <= 0:
            return 0.0
        pace = self.seconds_per_step(phase)
        return None if pace is None else left_steps * pace

    def left(self) -> float | None:
        """Seconds the whole run still needs; None while any phase's pace is unknown."""
        total = 0.0
        for phase in self.phase_steps:
            left = self.phase_left(phase)
            if left is None:
                return None
            total += left
        return total

    def fraction_done(self) -> float:
        """Share of the run's training time that is behind it (0 before any pace is known)."""
        spent = sum(self.spent.values())
        left = self.left()
        if left is None or spent + left <= 0:
            return 1.0 if left == 0.0 and self.done_steps else 0.0
        return spent / (spent + left)
