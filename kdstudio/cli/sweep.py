"""`kdstudio sweep SWEEP.toml`: run a sweep's trials, one line per trial as it ends, then
the trials ranked by the sweep's metric (mean ± std over seeds when seed is an axis).

Exit 0 when every trial completed, 1 when some failed or were stopped, 2 on bad input.
Ctrl-C (or SIGTERM, SIGHUP) stops the sweep: no trial starts, the running ones end
`stopped`; a second one ends it at once."""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from kdstudio.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_SIGNAL_BASE, BadInput
from kdstudio.cli.history import history_path, open_store
from kdstudio.cli.signals import ExitOnSignal, exit_now
from kdstudio.cli.tables import print_table
from kdstudio.core.text import printable


class SweepSignals(ExitOnSignal):
    """The first stop signal asks the sweep to stop; a second ends the command at once."""

    def __init__(self) -> None:
        super().__init__()
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, _frame: Any) -> None:  # type: ignore[override]
        import signal

        name = signal.Signals(signum).name
        if self.signum is not None:
            exit_now(signum, f"{name} again: ended at once; running trials will show as "
                             "interrupted")
        self.signum = signum
        print(f"kdstudio: {name}: stopping the sweep (running trials end stopped)",
              file=sys.stderr, flush=True)


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2%}" if metric.endswith("acc") else f"{value * 100:+.2f}"


def _label(overrides: dict[str, Any]) -> str:
    return " ".join(f"{key}={_short(value)}" for key, value in overrides.items())


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def cmd_sweep(args: argparse.Namespace) -> int:
    from kdstudio.core.config import ConfigError
    from kdstudio.core.store import HistoryError
    from kdstudio.core.sweep import SweepStarted, TrialFinished, read_sweep, run_sweep

    try:
        spec = read_sweep(args.sweep)
    except ValueError as error:
        raise BadInput([str(error)]) from None
    open_store(args.db, create=True).close()  # the history's problems, in the usual words
    total = [0]

    def on_event(event: Any) -> None:
        if isinstance(event, SweepStarted):
            total[0] = event.total
            skipped = f", {event.skipped} completed earlier (skipped)" if event.skipped else ""
            print(f"Sweep {event.group_id}: {event.total} trials{skipped}", flush=True)
        elif isinstance(event, TrialFinished):
            run = f"run {event.run_id}" if event.run_id is not None else "no run"
            line = (f"trial {event.index + 1}/{total[0]} {event.status:<9} "
                    f"{_label(event.overrides)}  {spec.metric} "
                    f"{_value(spec.metric, event.value)}  ({run})")
            if event.error:
                line += f"  error: {event.error}"
            print(printable(line), flush=True)

    with SweepSignals() as stops:
        try:
            result = run_sweep(spec, history_path(args.db), workers=args.workers,
                               backend=args.backend, address=args.address,
                               on_event=on_event, should_stop=stops)
        except ConfigError as error:
            raise BadInput([f"{args.sweep}: {problem}" for problem in error.problems]) from None
        except ValueError as error:
            raise BadInput([f"{args.sweep}: {error}"]) from None
        except HistoryError as error:
            print(f"kdstudio: {printable(error)}", file=sys.stderr)
            return EXIT_FAILED
    with open_store(args.db) as store:
        runs = store.runs_by_id(result.run_ids)
    print_ranking(spec, runs)
    print(f"\n{result.completed} completed, {result.failed} failed, {result.stopped} stopped; "
          f"best run {result.best_run_id if result.best_run_id is not None else '-'}")
    if stops.signum is not None:
        return EXIT_SIGNAL_BASE + stops.signum
    return EXIT_OK if result.failed == 0 and result.stopped == 0 else EXIT_FAILED


def print_ranking(spec: Any, runs: list[dict[str, Any]]) -> None:
    """The completed trials, best first; grouped over seeds (mean ± std) when seed is an
    axis."""
    from kdstudio.core.sweep.trials import get_key

    keys = [key for key in spec.axes if key != "seed"]
    groups: dict[tuple[str, ...], list[tuple[int, float]]] = {}
    for run in runs:
        value = (run.get("summary") or {}).get(spec.metric)
        if run["status"] != "completed" or not isinstance(value, (int, float)):
            continue
        label = tuple(_short(get_key(run["config"], key)) for key in keys)
        groups.setdefault(label, []).append((run["id"], float(value)))
    if not groups:
        print("\nNo completed trial to rank.")
        return
    seeds = "seed" in spec.axes
    ranked = sorted(groups.items(), key=lambda item: -statistics.fmean(v for _, v in item[1]))
    rows = []
    for rank, (label, found) in enumerate(ranked, 1):
        values = [v for _, v in found]
        mean = statistics.fmean(values)
        cell = _value(spec.metric, mean)
        if seeds and len(values) > 1:
            cell += f" ± {_value(spec.metric, statistics.stdev(values)).lstrip('+')}"
        rows.append([str(rank), *label, cell, str(len(values)),
                     ",".join(str(run_id) for run_id, _ in found)])
    print(f"\nRanked by {spec.metric}" + (" (mean ± std over seeds)" if seeds else "") + ":")
    print_table(["#", *keys, spec.metric, "n", "runs"], rows)
