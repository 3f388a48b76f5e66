"""A run's progress on the console, printed from the engine's typed events."""

from __future__ import annotations

import time
from typing import TextIO

from kdstudio.core.events import Epoch, Event, Log, Step
from kdstudio.core.progress import clock, seconds_left
from kdstudio.core.text import printable


class ConsolePrinter:
    """Turns engine events into a one-line progress bar (on a terminal) and epoch lines."""

    WIDTH = 24

    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.line_open = False
        self.reader_gone = False  # stdout's reader left (`| head`): the run goes on unprinted

    def __call__(self, event: Event) -> None:
        if self.quiet or self.reader_gone:
            return
        try:
            self._show(event)
        except BrokenPipeError:
            self.reader_gone = True

    def _show(self, event: Event) -> None:
        if isinstance(event, Step):
            if not self.tty:
                return
            now = time.monotonic()
            if now - self.last_draw >= 0.1 or event.run_step == event.run_steps:
                self.last_draw = now
                self._draw(event)
        elif isinstance(event, Epoch):
            values = event.values
            parts = [f"[{event.phase:>8}] epoch {event.epoch:>3}/{event.epochs:<3}"]
            if "train/loss" in values:
                parts.append(f"loss {values['train/loss']:.4f}")
            parts.append(f"val acc {values['val/acc']:6.2%}")
            if "val/agreement" in values:
                parts.append(f"agree {values['val/agreement']:6.2%}")
            self._write_line("  ".join(parts))
        elif isinstance(event, Log):
            self._write_line(("! " if event.level != "info" else "") +
                             printable(event.message))

    def _draw(self, event: Step) -> None:
        done = event.run_step / max(event.run_steps, 1)
        elapsed = time.monotonic() - self.started
        eta = seconds_left(elapsed, done) or 0.0
        filled = int(self.WIDTH * done)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        loss = event.values["loss/total"]
        text = (f"\r[{event.phase:>8}] epoch {event.epoch}/{event.epochs} [{bar}] "
                f"{done:4.0%} loss {loss:.4f} ETA {clock(eta, hours=True)}")
        self.stream.write(text.ljust(90))
        self.stream.flush()
        self.line_open = True

    def _write_line(self, text: str) -> None:
        if self.line_open:
            self.stream.write("\r" + " " * 90 + "\r")
            self.line_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End an open progress line, so what follows starts on its own line."""
        if self.line_open and not self.reader_gone:
            self.stream.write("\n")
            self.line_open = False
