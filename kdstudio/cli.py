"""Command line: `kdstudio` (window), `run`, `resume`, `runs`, `show`, `presets`, `export`,
`export-metrics`, `check`.

Exit codes: 0 done, 1 run failed, 2 bad input (one line per problem, no traceback),
128 + N after signal N (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP: a run they stop ends `stopped`
with everything so far kept), 141 when the reader of our output went away (`| head`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TextIO

from kdstudio.core.events import Epoch, Event, Log, RunStarted, Step
from kdstudio.core.text import printable

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_SIGNAL_BASE = 128
EXIT_BROKEN_PIPE = EXIT_SIGNAL_BASE + signal.SIGPIPE
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MAX_RUN_ID = 2**63 - 1  # SQLite's largest INTEGER
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
    parser.add_argument("--version", action="version", version=f"kdstudio {version()}")
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

    resume = sub.add_parser("resume", parents=[db],
                            help="continue a stopped or interrupted run from its last epoch")
    resume.add_argument("run", metavar="RUN", help="run id or name")
    resume.add_argument("--quiet", action="store_true", help="print only the summary")

    runs = sub.add_parser("runs", parents=[db], help="list saved runs")
    runs.add_argument("--status", choices=RUN_STATUSES, help="only runs with this status")
    runs.add_argument("--limit", type=_positive_int, default=50,
                      help="at most this many (default 50)")

    show = sub.add_parser("show", parents=[db], help="print a saved run's config and results")
    show.add_argument("run", metavar="RUN", help="run id or name")
    show.add_argument("--classes", action="store_true",
                      help="also print per-class test accuracy and KD gain")
    show.add_argument("--log", action="store_true",
                      help="also print the run's log, each line with its time (UTC) and level")

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


def version() -> str:
    """The installed package's version (its metadata), else the source tree's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("kdstudio")
    except PackageNotFoundError:
        from kdstudio import __version__

        return __version__


def main(argv: list[str] | None = None) -> int:
    """Run one command; no exception reaches the user as a traceback."""
    try:
        code = _dispatch(argv)
        sys.stdout.flush()  # a closed pipe is found here, not while the interpreter exits
        return code
    except KeyboardInterrupt:  # Ctrl-C before our handlers were in place
        return EXIT_SIGNAL_BASE + signal.SIGINT
    except BrokenPipeError:
        return _reader_gone()


def _dispatch(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command in (None, "gui"):
        from kdstudio.gui.app import main as gui_main

        return gui_main(db_path=getattr(args, "db", None))
    handlers = {"run": cmd_run, "runs": cmd_runs, "show": cmd_show, "presets": cmd_presets,
                "export": cmd_export, "export-metrics": cmd_export_metrics,
                "resume": cmd_resume, "check": cmd_check}
    try:
        with ExitOnSignal():
            return handlers[args.command](args)
    except BadInput as error:
        for line in error.lines:
            print(f"kdstudio: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT


def exit_now(signum: int, message: str) -> NoReturn:
    """One line on stderr and exit 128 + signum, raising nothing: an exception raised into
    an import of torch or numpy can leave them half-loaded or abort the interpreter. What
    SQLite had not committed is rolled back by SQLite itself."""
    with contextlib.suppress(OSError):
        os.write(sys.stderr.fileno(), f"kdstudio: {message}\n".encode())
    os._exit(EXIT_SIGNAL_BASE + signum)


class ExitOnSignal:
    """While a command runs, SIGINT, SIGTERM and SIGHUP end it at once with one line."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> ExitOnSignal:
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            for number in STOP_SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)

    @staticmethod
    def _handle(signum: int, _frame: Any) -> None:
        exit_now(signum, f"{signal.Signals(signum).name}: interrupted")


def _reader_gone() -> int:
    """stdout's reader closed the pipe (`kdstudio runs | head`): end quietly, as a tool killed
    by SIGPIPE would, without the interpreter complaining while it flushes stdout."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


class BadInput(Exception):
    """Bad input: one line per problem, user text in them escaped (a newline or an escape
    sequence in a value cannot break a line or reach the terminal)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = [printable(line) for line in lines]
        super().__init__("\n".join(self.lines))


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

    from kdstudio.core.store import HistoryError
    from kdstudio.core.store.files import damage_message, is_damage_error

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


def check_run_keys(keys: list[str]) -> None:
    """Raise BadInput for a run id that no history can hold (beyond SQLite's integers)."""
    for key in keys:
        text = str(key).strip()
        if not text.isdigit():
            continue
        try:
            number = int(text)
        except ValueError:  # a digit that is not 0-9, like '²'
            raise BadInput([f"no run {key!r}: a run id is a number written with 0-9"]) from None
        if number > MAX_RUN_ID:
            raise BadInput([f"no run '{key}': run ids go up to {MAX_RUN_ID}"])


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
    with _existing_history(getattr(args, "db", None)) as store:
        problems += validate(config, store=store)
    if problems:
        raise BadInput(problems)
    return config


@contextmanager
def _existing_history(path: str | None) -> Iterator[Any]:
    """The history when its file exists (validation checks a reused teacher's run against
    it), else None; creates nothing."""
    store = None
    if _history_path(path).is_file():
        with contextlib.suppress(BadInput):
            store = _open_store(path)
    try:
        yield store
    finally:
        if store is not None:
            store.close()


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class StopSignals(ExitOnSignal):
    """SIGINT, SIGTERM and SIGHUP during `kdstudio run`.

    Before the run starts a signal ends the command at once (nothing is saved yet). Once it
    runs, the first signal asks the engine to stop between two batches: the run ends
    `stopped`, everything so far kept. A second one ends the process at once; the run is
    then marked `interrupted` the next time the history is opened.
    """

    def __init__(self) -> None:
        super().__init__()
        self.signum: int | None = None
        self.run_id: int | None = None

    def __call__(self) -> bool:
        """The engine's should_stop."""
        return self.signum is not None

    def _handle(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.run_id is None:
            exit_now(signum, f"{name}: stopped before the run started; nothing saved")
        if self.signum is not None:
            exit_now(signum, f"{name} again: ended at once; run {self.run_id} keeps its "
                             "metrics so far and will show as interrupted")
        self.signum = signum

    def watch(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.run_id = event.run_id


def cmd_run(args: argparse.Namespace) -> int:
    def start(store: Any, on_event: Any, stops: StopSignals) -> Any:
        from kdstudio.core.engine import run

        return run(config, store, on_event, stops)

    with StopSignals() as stops:
        config = load_run_config(args)
        return _run_to_the_end(args, _open_store(args.db, create=True), start, stops)


def cmd_resume(args: argparse.Namespace) -> int:
    """Continue a stopped or interrupted run in its own row; Ctrl-C, SIGTERM and SIGHUP
    stop it again (resumable again from its last finished epoch)."""

    def start(store: Any, on_event: Any, stops: StopSignals) -> Any:
        from kdstudio.core.resume import refusal

        found = store.find_run(args.run)
        if found is None:
            raise BadInput([f"no run '{args.run}' in {store.path}"])
        reason = refusal(found, store.artifact_dir(found["id"]))
        if reason:  # said before torch is imported (seconds)
            raise BadInput([reason])
        from kdstudio.core.engine import resume

        return resume(found["id"], store, on_event, stops)

    with StopSignals() as stops:
        check_run_keys([args.run])
        return _run_to_the_end(args, _open_store(args.db), start, stops)


def _run_to_the_end(args: argparse.Namespace, store: Any, start: Any,
                    stops: StopSignals) -> int:
    """Run `start(store, on_event, should_stop)` with the console printer and the stop
    signals, then print the summary; the exit code of `run` and `resume`."""
    from kdstudio.core.config import ConfigError
    from kdstudio.core.store import HistoryError

    printer = ConsolePrinter(sys.stdout, quiet=args.quiet)

    def on_event(event: dict[str, Any]) -> None:
        stops.watch(event)
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
        eta = elapsed / done * (1 - done) if done > 0 else 0.0
        filled = int(self.WIDTH * done)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        loss = event.values["loss/total"]
        text = (f"\r[{event.phase:>8}] epoch {event.epoch}/{event.epochs} [{bar}] "
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
        if self.line_open and not self.reader_gone:
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
    print(f"Run {run_id} {status} in {summary.get('duration_s', 0):.1f} s; saved in "
          f"{printable(db_path)}")
    if error:  # one line, whatever the message holds
        print(f"Error: {printable(error)}", file=sys.stderr)


# ---------------------------------------------------------------- history


def cmd_runs(args: argparse.Namespace) -> int:
    with _reading(args.db) as store:
        runs = store.list_runs(status=args.status, limit=args.limit)
    if not runs:
        print(f"No runs in {printable(store.path)}")
        return EXIT_OK
    rows = [[printable(cell) for cell in (
                r["id"], r["name"], r["status"], str(r["created_at"]).replace("T", " ")[:19],
                r["dataset"] or "-", f"{r['teacher_arch'] or '-'} -> {r['student_arch']}",
                r["method"] or "-")]
            + [_pct(r["teacher_test_acc"]), _pct(r["baseline_test_acc"]),
               _pct(r["student_test_acc"]),
               f"{r['kd_gain'] * 100:+.2f}" if r["kd_gain"] is not None else "-"]
            for r in runs]
    print_table(["id", "name", "status", "started (UTC)", "data", "teacher -> student", "method",
                 "teacher", "alone", "student", "gain"], rows)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from kdstudio.core.config import config_from_dict

    check_run_keys([args.run])
    with _reading(args.db) as store:
        run = store.find_run(args.run)
        if run is None:
            raise BadInput([f"no run '{args.run}' in {store.path}"])
        artifacts = store.artifacts(run["id"])
        knowledge = _dark_knowledge(store, run["id"]) if args.classes else None
        log = store.logs(run["id"]) if args.log else None
    config, _ = config_from_dict(run["config"])
    print(printable(f"Run {run['id']}: {run['name']}  [{run['status']}]"))
    print(printable(f"Started {run['created_at']}, finished {run['finished_at'] or '-'}, "
                    f"device {run['device'] or '-'}, seed {run['seed']}"))
    if run.get("tags"):
        print("Tags: " + ", ".join(printable(tag) for tag in run["tags"]))
    if run.get("notes"):
        print(f"Notes: {printable(run['notes'])}")
    if run["error"]:
        print(f"Error: {printable(run['error'])}")
    print("\nConfig:\n" + "\n".join("  " + printable(line)
                                     for line in config.to_toml().splitlines()))
    print_summary(run["id"], run["status"], run["summary"], None, store.path)
    if artifacts:
        print("\nFiles:")
        for artifact in artifacts:
            print(printable(f"  {artifact['kind']:<9} {artifact['path']}  "
                            f"sha256 {artifact['sha256'][:12]}"))
    if knowledge is not None:
        print_class_table(knowledge)
    if log is not None:
        print_log(log)
    return EXIT_OK


def print_log(lines: list[dict[str, Any]]) -> None:
    """A run's stored log lines: time (UTC), level, message with control characters
    escaped."""
    import datetime as dt

    print(f"\nLog ({len(lines)} lines, UTC):" if lines else "\nLog: no lines stored")
    for line in lines:
        when = dt.datetime.fromtimestamp(line["wall_time"], dt.UTC)
        stamp = when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d}"
        print(f"  {stamp}  {printable(line['level']):<7}  {printable(line['message'])}")


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

    check_run_keys([args.run])
    with _reading(args.db, records=True) as store:
        try:
            report = export_student(store, args.run, args.out, args.format)
        except ExportError as error:
            raise BadInput([str(error)]) from None
    print("\n".join(printable(line) for line in report.lines()))
    if not report.ok:
        print("kdstudio: an exported file failed or does not match the student (see above)",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def cmd_export_metrics(args: argparse.Namespace) -> int:
    from kdstudio.core.export import ExportError, export_metrics_csv

    check_run_keys(args.runs)
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
    from kdstudio.core.store import HistoryError
    from kdstudio.core.store.check import check_history, repair_history

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
