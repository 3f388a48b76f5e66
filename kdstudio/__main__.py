"""`python -m kdstudio` is the same as the `kdstudio` command."""

import _signal  # built in: `signal` itself takes a while to import, and Ctrl-C may come then
import os


def _exit_quietly(signum: int, _frame: object) -> None:
    os._exit(128 + signum)  # nothing is open yet; an exception could break a half-done import


_signal.signal(_signal.SIGINT, _exit_quietly)  # Ctrl-C while the command line loads

import sys  # noqa: E402

from kdstudio.cli import main  # noqa: E402

sys.exit(main())
