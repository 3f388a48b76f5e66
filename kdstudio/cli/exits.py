"""The command line's exit codes, and BadInput: the error that becomes exit 2."""

from __future__ import annotations

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
