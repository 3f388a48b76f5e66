"""The command line's exit codes, and BadInput: the error that becomes exit 2."""

from __future__ import annotations

import os
import signal

from kdstudio.core.text import printable

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_SIGNAL_BASE = 128  # + N after signal N
EXIT_BROKEN_PIPE = EXIT_SIGNAL_BASE + signal.SIGPIPE


class BadInput(Exception):
    """Bad input: one line per problem, user text in them escaped (a newline or an escape
    sequence in a value cannot break a line or reach the terminal)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = [printable(line) for line in lines]
        super().__init__("\n".join(self.lines))


def torchrun_follower() -> bool:
    """Whether this process is a torchrun rank other than 0 (WORLD_SIZE > 1, RANK > 0):
    under torchrun rank 0 prints and records, the other ranks say nothing."""
    return os.environ.get("RANK", "0") not in ("", "0") and \
        os.environ.get("WORLD_SIZE", "1") not in ("", "1")
