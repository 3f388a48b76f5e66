"""Tables on stdout: a run's summary, and the columns the reading commands print."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kdstudio.core.text import printable


def pct(value: Any) -> str:
    """A fraction as a percentage with two decimals; `-` for a missing value."""
    return f"{value:.2%}" if isinstance(value, (int, float)) else "-"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns as wide as their widest cell, a rule under the headers."""
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def print_summary(run_id: int, status: str, summary: dict[str, Any], error: str | None,
                  db_path: Path) -> None:
    """A run's results: accuracy of each model it trained, KD gain, compression, where
    it is saved, and its error (on stderr)."""
    print()
    rows = []
    for phase, label in (("teacher", "teacher"), ("baseline", "student alone"),
                         ("student", "student + KD")):
        if f"{phase}_test_acc" in summary or f"{phase}_last_val_acc" in summary:
            params = summary.get("teacher_params" if phase == "teacher" else "student_params")
            rows.append([label, f"{params:,}" if params else "-",
                         pct(summary.get(f"{phase}_best_val_acc")),
                         pct(summary.get(f"{phase}_last_val_acc")),
                         pct(summary.get(f"{phase}_test_acc"))])
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
