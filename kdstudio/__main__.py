"""`python -m kdstudio` is the same as the `kdstudio` command."""

import os
import signal
import sys


def _exit_quietly(signum: int, _frame: object) -> None:
    os._exit(128 + signum)  # nothing is open yet: no exception that some import could catch


signal.signal(signal.SIGINT, _exit_quietly)  # Ctrl-C while the command line loads
from kdstudio.cli import main  # noqa: E402

signal.signal(signal.SIGINT, signal.default_int_handler)
sys.exit(main())
