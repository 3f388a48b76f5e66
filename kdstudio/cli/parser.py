"""The argument parser of `kdstudio` and its commands."""

from __future__ import annotations

import argparse

from kdstudio.cli.consent import add_trust_flag

RUN_STATUSES = ("running", "completed", "stopped", "failed", "interrupted")  # as in store


def version() -> str:
    """The installed package's version (its metadata), else the source tree's."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("kdstudio")
    except PackageNotFoundError:
        from kdstudio import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    """`kdstudio [COMMAND] ...`; the command's name lands in `args.command` (None: window)."""
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
    add_trust_flag(run)

    resume = sub.add_parser("resume", parents=[db],
                            help="continue a stopped or interrupted run from its last epoch")
    resume.add_argument("run", metavar="RUN", help="run id or name")
    resume.add_argument("--quiet", action="store_true", help="print only the summary")
    add_trust_flag(resume)

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
    add_trust_flag(show)

    sub.add_parser("presets", help="list shipped presets")

    models = sub.add_parser("models", help="list model architectures with their parameter "
                                           "counts and feature layers")
    models.add_argument("--filter", metavar="TEXT",
                        help="only names holding TEXT (any case), e.g. torchvision: or resnet")

    export = sub.add_parser("export", parents=[db],
                            help="export a run's student (safetensors, TorchScript, ONNX)")
    export.add_argument("run", metavar="RUN", help="run id or name")
    export.add_argument("--format", default="all", metavar="FMT",
                        help="safetensors, torchscript, onnx or all (default: all)")
    export.add_argument("--out", required=True, metavar="DIR", help="folder for the files")
    add_trust_flag(export)

    export_metrics = sub.add_parser("export-metrics", parents=[db],
                                    help="write the metrics of runs to one CSV file")
    export_metrics.add_argument("runs", nargs="+", metavar="RUN", help="run ids or names")
    export_metrics.add_argument("--out", required=True, metavar="FILE.csv", help="CSV file")

    check = sub.add_parser("check", parents=[db],
                           help="check a history file's integrity (exit 1 when damaged)")
    check.add_argument("--repair", action="store_true",
                       help="copy every readable run into a new file beside it")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {text!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (got {value})")
    return value
