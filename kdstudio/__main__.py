"""`python -m kdstudio` is the same as the `kdstudio` command."""

import os
import signal
import sys


def _exit_quietly(signum: int, _frame: object) -> None:
    os._exit(128 + signum)  # nothing is open yet; an exception could break a half-done import


signal.signal(signal.SIGINT, _exit_quietly)  # Ctrl-C while the command line loads
from kdstudio.cli import main  # noqa: E402

sys.exit(main())
