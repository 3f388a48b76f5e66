"""`kdstudio run` and `kdstudio resume`: build the run's config, train it with the console
printer and the stop signals, print the summary."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kdstudio.cli.consent import config_code, consent, run_code
from kdstudio.cli.console import ConsolePrinter
from kdstudio.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_SIGNAL_BASE, BadInput
from kdstudio.cli.history import check_run_keys, existing_history, find_run, open_store
from kdstudio.cli.signals import StopSignals
from kdstudio.cli.tables import print_summary
from kdstudio.core.events import Event, RunStarted
from kdstudio.core.text import printable

if TYPE_CHECKING:
    from kdstudio.core.config import RunConfig

# start(store, on_event, should_stop) -> the engine's result
Start = Callable[[Any, Callable[[Event], None], StopSignals], Any]


def load_run_config(args: argparse.Namespace) -> RunConfig:
    """The RunConfig that `kdstudio run` would execute; raises BadInput."""
    from kdstudio.core.config import apply_overrides, config_from_dict, read_toml, validate
    from kdstudio.core.presets import load_preset

    try:
        data = load_preset(args.preset) if args.preset else read_toml(args.config)
        if args.device:
            data = apply_overrides(data, [f"device={_toml_string(args.device)}"])
        data = apply_overrides(data, args.overrides)
    except ValueError as error:
        raise BadInput([str(error)]) from None
    config, problems = config_from_dict(data)
    if getattr(args, "trust_code", False):  # else validation names each file, importing none
        consent(config_code(config), True)
    with existing_history(getattr(args, "db", None)) as store:
        problems += validate(config, store=store)
    if problems:
        raise BadInput(problems)
    return config


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cmd_run(args: argparse.Namespace) -> int:
    """Run a config file or a preset; Ctrl-C, SIGTERM and SIGHUP stop it (kept)."""
    def start(store: Any, on_event: Callable[[Event], None], stops: StopSignals) -> Any:
        from kdstudio.core.engine import run

        return run(config, store, on_event, stops)

    with StopSignals() as stops:
        config = load_run_config(args)
        return _run_to_the_end(args, open_store(args.db, create=True), start, stops)


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue a stopped or interrupted run in its own row; Ctrl-C, SIGTERM and SIGHUP
    stop it again (resumable again from its last finished epoch)."""

    def start(store: Any, on_event: Callable[[Event], None], stops: StopSignals) -> Any:
        from kdstudio.core.resume import refusal

        found = find_run(store, args.run)
        reason = refusal(found, store.artifact_dir(found["id"]))
        if reason:  # said before torch is imported (seconds)
            raise BadInput([reason])
        consent(run_code(store, found["id"]), args.trust_code)
        from kdstudio.core.engine import resume

        return resume(found["id"], store, on_event, stops)

    with StopSignals() as stops:
        check_run_keys([args.run])
        return _run_to_the_end(args, open_store(args.db), start, stops)


def _run_to_the_end(args: argparse.Namespace, store: Any, start: Start,
                    stops: StopSignals) -> int:
    """Run `start(store, on_event, should_stop)` with the console printer and the stop
    signals, then print the summary; the exit code of `run` and `resume`."""
    from kdstudio.core.config import ConfigError
    from kdstudio.core.store import HistoryError

    printer = ConsolePrinter(sys.stdout, quiet=args.quiet)

    def on_event(event: Event) -> None:
        if isinstance(event, RunStarted):
            stops.run_id = event.run_id  # from now on a signal stops the run, kept
        printer(event)

    try:
        result = start(store, on_event, stops)
    except ConfigError as error:
        raise BadInput(error.problems) from None
    except HistoryError as error:  # the run could not even be recorded as started
        printer.finish()
        print(f"kdstudio: {printable(error)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        _close_quietly(store)
    printer.finish()
    print_summary(result.run_id, result.status, result.summary, result.error, store.path)
    if stops.signum is not None:
        return EXIT_SIGNAL_BASE + stops.signum
    return EXIT_OK if result.status == "completed" else EXIT_FAILED


def _close_quietly(store: Any) -> None:
    """Close the history; a failure to write its last rows was already reported by the
    run's end (finish_run), so it is not a second error."""
    from kdstudio.core.store import HistoryError

    with contextlib.suppress(HistoryError):
        store.close()
