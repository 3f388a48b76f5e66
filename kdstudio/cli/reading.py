"""The commands that read the history: `runs`, `show`, `export`, `export-metrics`, `check`,
and `presets` (the shipped ones)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kdstudio.cli.consent import consent, run_code
from kdstudio.cli.exits import EXIT_FAILED, EXIT_OK, BadInput
from kdstudio.cli.history import (
    check_run_keys,
    find_run,
    history_label,
    history_path,
    history_problems,
    reading,
)
from kdstudio.cli.tables import pct, print_summary, print_table
from kdstudio.core.text import printable


def cmd_runs(args: argparse.Namespace) -> int:
    """A table of the saved runs, newest first."""
    with reading(args.db) as store:
        runs = store.list_runs(status=args.status, limit=args.limit)
    if not runs:
        print(f"No runs in {printable(store.path)}")
        return EXIT_OK
    rows = [[printable(cell) for cell in (
                r["id"], r["name"], r["status"], str(r["created_at"]).replace("T", " ")[:19],
                r["dataset"] or "-", f"{r['teacher_arch'] or '-'} -> {r['student_arch']}",
                r["method"] or "-")]
            + [pct(r["teacher_test_acc"]), pct(r["baseline_test_acc"]),
               pct(r["student_test_acc"]),
               f"{r['kd_gain'] * 100:+.2f}" if r["kd_gain"] is not None else "-"]
            for r in runs]
    print_table(["id", "name", "status", "started (UTC)", "data", "teacher -> student", "method",
                 "teacher", "alone", "student", "gain"], rows)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """One run: its config, results and files; per-class accuracy and log when asked."""
    from kdstudio.core.config import config_from_dict

    check_run_keys([args.run])
    with reading(args.db) as store:
        run = find_run(store, args.run)
        artifacts = store.artifacts(run["id"])
        if args.classes:  # rebuilds the run's models
            consent(run_code(store, run["id"]), args.trust_code)
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
        row += [pct(knowledge.accuracy[k][index].item()) for k in kinds]
        if gain is not None:
            row.append(f"{gain[index].item() * 100:+.1f}")
        rows.append(row)
    headers = ["class", "n"] + [labels[k] for k in kinds] + (["gain"] if gain is not None else [])
    print("\nPer-class test accuracy (gain = student - alone, points):")
    print_table(headers, rows)


def cmd_presets(_args: argparse.Namespace) -> int:
    """The shipped presets, one a line with its description."""
    from kdstudio.core.presets import list_presets, preset_description

    names = list_presets()
    width = max((len(name) for name in names), default=0)
    for name in names:
        print(f"{name:<{width}}  {preset_description(name)}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """Write a run's student as files, each checked against the student (exit 1: one is not)."""
    from kdstudio.core.export import ExportError, export_student

    check_run_keys([args.run])
    with reading(args.db, records=True) as store:
        consent(run_code(store, find_run(store, args.run)["id"]), args.trust_code)
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
    """Write the metric rows of runs to one CSV file."""
    from kdstudio.core.export import ExportError, export_metrics_csv

    check_run_keys(args.runs)
    with reading(args.db) as store:
        try:
            count = export_metrics_csv(store, args.runs, args.out)
        except ExportError as error:
            raise BadInput([str(error)]) from None
    print(f"{count} metric rows of {len(args.runs)} run(s) written to {args.out}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Integrity report (exit 0 ok, 1 damaged); `--repair` copies what is readable."""
    from kdstudio.core.store import HistoryError
    from kdstudio.core.store.check import check_history, repair_history

    label = history_label(args.db)
    with history_problems(label):
        report = check_history(history_path(args.db))
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
