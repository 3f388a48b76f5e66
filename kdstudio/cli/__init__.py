"""Command line: `kdstudio` (window), `run`, `resume`, `runs`, `show`, `presets`, `models`,
`export`, `export-metrics`, `check`.

Exit codes: 0 done, 1 run failed, 2 bad input (one line per problem, no traceback),
128 + N after signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP: a run they stop ends `stopped`
with everything so far kept), 141 when the reader of our output went away (`| head`).

A command's module (and the window, and the engine) is imported only when that command
runs, so that `kdstudio --version` and `kdstudio runs` start fast.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable

from kdstudio.cli.exits import (
    EXIT_BAD_INPUT,
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SIGNAL_BASE,
    BadInput,
)
from kdstudio.cli.parser import RUN_STATUSES, build_parser
from kdstudio.cli.signals import ExitOnSignal, reader_gone

__all__ = ["EXIT_BAD_INPUT", "EXIT_BROKEN_PIPE", "EXIT_FAILED", "EXIT_OK", "EXIT_SIGNAL_BASE",
           "RUN_STATUSES", "BadInput", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run one command; no exception reaches the user as a traceback."""
    try:
        code = _dispatch(argv)
        sys.stdout.flush()  # a closed pipe is found here, not while the interpreter exits
        return code
    except KeyboardInterrupt:  # Ctrl-C before our handlers were in place
        return EXIT_SIGNAL_BASE + signal.SIGINT
    except BrokenPipeError:
        return reader_gone()


def _dispatch(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in (None, "gui"):
        from kdstudio.gui.app import main as gui_main

        return gui_main(db_path=getattr(args, "db", None))
    try:
        with ExitOnSignal():
            return _command(args.command)(args)
    except BadInput as error:
        for line in error.lines:
            print(f"kdstudio: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The function that runs the command `name`, its module imported now."""
    if name in ("run", "resume"):
        from kdstudio.cli import training

        return {"run": training.cmd_run, "resume": training.cmd_resume}[name]
    if name == "models":
        from kdstudio.cli import catalogue

        return catalogue.cmd_models
    from kdstudio.cli import reading

    return {"runs": reading.cmd_runs, "show": reading.cmd_show, "presets": reading.cmd_presets,
            "export": reading.cmd_export, "export-metrics": reading.cmd_export_metrics,
            "check": reading.cmd_check}[name]
