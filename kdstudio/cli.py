"""Command line: `kdstudio` (window), `run`, `runs`, `show`, `presets`, `export`, `check`.

Exit codes: 0 done, 1 run failed or stopped, 2 bad input (one line per problem, no traceback).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
RUN_STATUSES = ("running", "completed", "stopped", "failed", "interrupted")  # as in store


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {value})")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kdstudio",
        description="KD Studio: distil a teacher network into a small student. "
                    "With no command, opens the window.",
    )
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", metavar="PATH",
                    help="history database (default: $KDSTUDIO_DB or the user data folder)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("gui", parents=[db], help="open the window (the default)")

    run = sub.add_parser("run", parents=[db], help="run a config or preset headless")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("config", nargs="?", metavar="CONFIG.toml", help="config file")
    source.add_argument("--preset", metavar="NAME", help="a shipped preset (see `presets`)")
    run.add_argument("--device", metavar="D", help="auto, cpu, cuda, cuda:N or mps")
    run.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY.PATH=VALUE", help="override one config value (repeatable)")
    run.add_argument("--quiet", action="store_true", help="print only the summary")

    runs = sub.add_parser("runs", parents=[db], help="list saved runs")
    runs.add_argument("--status", choices=RUN_STATUSES, help="only runs with this status")
    runs.add_argument("--limit", type=_positive_int, default=50,
                      help="at most this many (default 50)")

    show = sub.add_parser("show", parents=[db], help="print a saved run's config and results")
    show.add_argument("run", metavar="RUN", help="run id or name")
    show.add_argument("--classes", action="store_true",
                      help="also print per-class test accuracy and KD gain")

    sub.add_parser("presets", help="list shipped presets")

    export = sub.add_parser("export", parents=[db],
                            help="export a run's student (safetensors, TorchScript, ONNX)")
    export.add_argument("run", metavar="RUN", help="run id or name")
    export.add_argument("--format", default="all", metavar="FMT",
                        help="safetensors, torchscript, onnx or all (default: all)")
    export.add_argument("--out", required=True, metavar="DIR", help="folder for the files")

    export_metrics = sub.add_parser("export-metrics", parents=[db],
                                    help="write the metrics of runs to one CSV file")
    export_metrics.add_argument("runs", nargs="+", metavar="RUN", help="run ids or names")
    export_metrics.add_argument("--out", required=True, metavar="FILE.csv", help="CSV file")

    check = sub.add_parser("check", parents=[db],
                           help="check a history file's integrity (exit 1 when damaged)")
    check.add_argument("--repair", action="store_true",
                       help="copy every readable run into a new file beside it")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in (None, "gui"):
        from kdstudio.gui.app import main as gui_main

        return gui_main(db_path=getattr(args, "db", None))
    handlers = {"run": cmd_run, "runs": cmd_runs, "show": cmd_show, "presets": cmd_presets,
                "export": cmd_export, "export-metrics": cmd_export_metrics,
                "check": cmd_check}
    try:
        return handlers[args.command](args)
    except BadInput as error:
        for line in error.lines:
            print(f"kdstudio: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT


class BadInput(Exception):
    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _history_label(path: str | None) -> str:
    """Where the history path came from, for error lines: `--db PATH`, `$KDSTUDIO_DB=PATH`
    or, for the default location, the path alone."""
    if path is not None:
        return f"--db {path}"
    override = os.environ.get("KDSTUDIO_DB")
    if override:
        return f"$KDSTUDIO_DB={override}"
    from kdstudio.core.paths import default_db_path

    return str(default_db_path())


def _history_path(path: str | None) -> Path:
    from kdstudio.core.paths import default_db_path

    return Path(path).expanduser() if path is not None else default_db_path()


def _open_store(path: str | None, create: bool = False):
    """The history for a command. Read commands (`create=False`) create nothing; `run`
    creates a new history file in an existing folder (and the default location's folder,
    which does not exist before the first run), never a folder named by --db or
    $KDSTUDIO_DB."""
    from kdstudio.core.store import HistoryError, Store

    label = _history_label(path)
    explicit = path is not None or bool(os.environ.get("KDSTUDIO_DB"))
    target = _history_path(path)
    if create and explicit and not target.parent.is_dir():
        folder = Path(os.path.abspath(target)).parent
        raise BadInput([f"{label}: the folder {folder} does not exist (create it first)"])
    try:
        return Store(target, create=create)
    except HistoryError as error:
        raise BadInput([f"{label}: {error.problem}"]) from None
    except Exception as error:  # noqa: BLE001 - any other open failure is a bad --db
        raise BadInput([f"{label}: cannot open the history ({type(error).__name__}: "
                        f"{error})"]) from None


@contextmanager
def _reading(path: str | None, records: bool = False) -> Iterator[Any]:
    """An open history for a read command; damage met while reading becomes one line.
    `records`: the command also records rows (export), so the write check runs first."""
    import sqlite3

    from kdstudio.core.history_files import HistoryError, damage_message, is_damage_error

    store = _open_store(path)
    label = _history_label(path)
    try:
        with store:
            if records:
                store.check_writable()
            yield store
    except HistoryError as error:
        raise BadInput([f"{label}: {error.problem}"]) from None
    except sqlite3.DatabaseError as error:
        problem = (damage_message(error) if is_damage_error(error)
                   else f"cannot read the history ({error})")
        raise BadInput([f"{label}: {problem}"]) from None


# ---------------------------------------------------------------- run


def load_run_config(args: argparse.Namespace):
    """The RunConfig that `kdstudio run` would execute; raises BadInput."""
    from kdstudio.core.config import (
        apply_overrides,
        config_from_dict,
        read_toml,
        validate,
    )
    from kdstudio.core.presets import load_preset

    try:
        data = load_preset(args.preset) if args.preset else read_toml(args.config)
        if args.device:
            data = apply_overrides(data, [f"device={_toml_string(args.device)}"])
        data = apply_overrides(data, args.overrides)
    except ValueError as error:
        raise BadInput([str(error)]) from None
    config, problems = config_from_dict(data)
    problems += validate(config)
    if problems:
        raise BadInput(problems)
    return config


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cmd_run(args: argparse.Namespace) -> int:
    config = load_run_config(args)
    from kdstudio.core.config import ConfigError
    from kdstudio.core.engine import run

    stop_requested = False

    def on_interrupt(_signum: int, _frame: Any) -> None:
        nonlocal stop_requested
        stop_requested = True

    previous = signal.signal(signal.SIGINT, on_interrupt)
    printer = ConsolePrinter(sys.stdout, quiet=args.quiet)
    store = _open_store(args.db, create=True)
    try:
        result = run(config, store, printer, lambda: stop_requested)
    except ConfigError as error:
        raise BadInput(error.problems) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        store.close()
    printer.finish()
    print_summary(result.run_id, result.status, result.summary, result.error, store.path)
    return EXIT_OK if result.status == "completed" else EXIT_FAILED


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


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

    def __call__(self, event: dict[str, Any]) -> None:
        if self.quiet:
            return
        kind = event["type"]
        if kind == "step" and self.tty:
            now = time.monotonic()
            if now - self.last_draw >= 0.1 or event["run_step"] == event["run_steps"]:
                self.last_draw = now
                self._draw(event)
        elif kind == "epoch":
            values = event["values"]
            parts = [f"[{event['phase']:>8}] epoch {event['epoch']:>3}/{event['epochs']:<3}"]
            if "train/loss" in values:
                parts.append(f"loss {values['train/loss']:.4f}")
            parts.append(f"val acc {values['val/acc']:6.2%}")
            if "val/agreement" in values:
                parts.append(f"agree {values['val/agreement']:6.2%}")
            self._write_line("  ".join(parts))
        elif kind == "log":
            self._write_line(("! " if event["level"] != "info" else "") + event["message"])

    def _draw(self, event: dict[str, Any]) -> None:
        done = event["run_step"] / max(event["run_steps"], 1)
        elapsed = time.monotonic() - self.started
        eta = elapsed / done * (1 - done) if done > 0 else 0.0
        filled = int(self.WIDTH * done)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        loss = event["values"]["loss/total"]
        text = (f"\r[{event['phase']:>8}] epoch {event['epoch']}/{event['epochs']} [{bar}] "
                f"{done:4.0%} loss {loss:.4f} ETA {_clock(eta)}")
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
        if self.line_open:
            self.stream.write("\n")
            self.line_open = False


def _pct(value: Any) -> str:
    return f"{value:.2%}" if isinstance(value, (int, float)) else "-"


def print_table(headers: list[str], rows: list[list[str]], stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    stream.write(line + "\n" + "  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        stream.write("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + "\n")


def print_summary(run_id: int, status: str, summary: dict[str, Any], error: str | None,
                  db_path: Path) -> None:
    print()
    rows = []
    for phase, label in (("teacher", "teacher"), ("baseline", "student alone"),
                         ("student", "student + KD")):
        if f"{phase}_test_acc" in summary or f"{phase}_last_val_acc" in summary:
            params = summary.get("teacher_params" if phase == "teacher" else "student_params")
            rows.append([label, f"{params:,}" if params else "-",
                         _pct(summary.get(f"{phase}_best_val_acc")),
                         _pct(summary.get(f"{phase}_last_val_acc")),
                         _pct(summary.get(f"{phase}_test_acc"))])
    if rows:
        print_table(["model", "params", "best val", "last val", "test"], rows)
    if "kd_gain" in summary:
        print(f"\nKD gain (student + KD - student alone, test): {summary['kd_gain'] * 100:+.2f} "
              "points")
    if "compression" in summary:
        print(f"Compression: {summary['compression']:.1f}x fewer parameters")
    print(f"Run {run_id} {status} in {summary.get('duration_s', 0):.1f} s; saved in {db_path}")
    if error:
        print(f"Error: {error}", file=sys.stderr)


# ---------------------------------------------------------------- history


def cmd_runs(args: argparse.Namespace) -> int:
    with _reading(args.db) as store:
        runs = store.list_runs(status=args.status, limit=args.limit)
    if not runs:
        print(f"No runs in {store.path}")
        return EXIT_OK
    rows = [[str(r["id"]), r["name"], r["status"], r["created_at"].replace("T", " ")[:19],
             r["dataset"] or "-", f"{r['teacher_arch'] or '-'} -> {r['student_arch']}",
             r["method"] or "-", _pct(r["teacher_test_acc"]), _pct(r["baseline_test_acc"]),
             _pct(r["student_test_acc"]),
             f"{r['kd_gain'] * 100:+.2f}" if r["kd_gain"] is not None else "-"]
            for r in runs]
    print_table(["id", "name", "status", "started (UTC)", "data", "teacher -> student", "method",
                 "teacher", "alone", "student", "gain"], rows)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from kdstudio.core.config import config_from_dict

    with _reading(args.db) as store:
        run = store.find_run(args.run)
        if run is None:
            raise BadInput([f"no run '{args.run}' in {store.path}"])
        artifacts = store.artifacts(run["id"])
        knowledge = _dark_knowledge(store, run["id"]) if args.classes else None
    config, _ = config_from_dict(run["config"])
    print(f"Run {run['id']}: {run['name']}  [{run['status']}]")
    print(f"Started {run['created_at']}, finished {run['finished_at'] or '-'}, "
          f"device {run['device'] or '-'}, seed {run['seed']}")
    if run["error"]:
        print(f"Error: {run['error']}")
    print("\nConfig:\n" + "\n".join("  " + line for line in config.to_toml().splitlines()))
    print_summary(run["id"], run["status"], run["summary"], None, store.path)
    if artifacts:
        print("\nFiles:")
        for artifact in artifacts:
            print(f"  {artifact['kind']:<9} {artifact['path']}  sha256 {artifact['sha256'][:12]}")
    if knowledge is not None:
        print_class_table(knowledge)
    return EXIT_OK


def _dark_knowledge(store: Any, run_id: int) -> Any:
    from kdstudio.core.analysis import dark_knowledge

    try:
        return dark_knowledge(store, run_id)
    except (ValueError, KeyError, OSError) as error:
        raise BadInput([f"--classes: {error}"]) from None


def print_class_table(knowledge: Any) -> None:
    """Per-class test accuracy of teacher, student alone and distilled student, and the gain."""
    kinds = [k for k in ("teacher", "baseline", "student") if k in knowledge.accuracy]
    labels = {"teacher": "teacher", "baseline": "alone", "student": "student"}
    gain = knowledge.class_gain()
    counts = knowledge.y_test.bincount(minlength=knowledge.num_classes).tolist()
    rows = []
    for index, name in enumerate(knowledge.class_names):
        row = [name, str(counts[index])]
        row += [_pct(knowledge.accuracy[k][index].item()) for k in kinds]
        if gain is not None:
            row.append(f"{gain[index].item() * 100:+.1f}")
        rows.append(row)
    headers = ["class", "n"] + [labels[k] for k in kinds] + (["gain"] if gain is not None else [])
    print("\nPer-class test accuracy (gain = student - alone, points):")
    print_table(headers, rows)


def cmd_presets(_args: argparse.Namespace) -> int:
    from kdstudio.core.presets import list_presets, preset_description

    for name in list_presets():
        print(f"{name:<20} {preset_description(name)}")
    return EXIT_OK


# ---------------------------------------------------------------- export


def cmd_export(args: argparse.Namespace) -> int:
    from kdstudio.core.export import ExportError, export_student

    with _reading(args.db, records=True) as store:
        try:
            report = export_student(store, args.run, args.out, args.format)
        except ExportError as error:
            raise BadInput([str(error)]) from None
    print("\n".join(report.lines()))
    if not report.ok:
        print("kdstudio: an exported file failed or does not match the student (see above)",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_export_metrics(args: argparse.Namespace) -> int:
    from kdstudio.core.export import ExportError, export_metrics_csv

    with _reading(args.db) as store:
        try:
            count = export_metrics_csv(store, args.runs, args.out)
        except ExportError as error:
            raise BadInput([str(error)]) from None
    print(f"{count} metric rows of {len(args.runs)} run(s) written to {args.out}")
    return EXIT_OK


# ---------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:
    """Integrity report (exit 0 ok, 1 damaged); `--repair` copies what is readable."""
    from kdstudio.core.history_check import check_history, repair_history
    from kdstudio.core.history_files import HistoryError

    label = _history_label(args.db)
    try:
        report = check_history(_history_path(args.db))
    except HistoryError as error:
        raise BadInput([f"{label}: {error.problem}"]) from None
    print("\n".join(report.lines()))
    if not args.repair:
        return EXIT_OK if report.ok else EXIT_FAILED
    print()
    try:
        repaired = repair_history(report.path)
    except (ValueError, HistoryError) as error:
        print(f"kdstudio: {label}: cannot repair: {error}", file=sys.stderr)
        return EXIT_FAILED
    print("\n".join(repaired.lines()))
    return EXIT_OK if report.ok else EXIT_FAILED
