"""What an export produced: the files written and how each compared with the student."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Progress = Callable[[str], None]


class ExportError(Exception):
    """A problem the user can fix (unknown run, nothing saved, unwritable folder)."""


@dataclass
class ExportedFile:
    """One written file and how it compared with the in-app student."""

    format: str
    path: Path
    size_bytes: int
    max_abs_diff: float | None = None
    checked_with: str = ""
    ok: bool = True


@dataclass
class ExportReport:
    run_id: int
    run_name: str
    out_dir: Path
    files: list[ExportedFile] = field(default_factory=list)
    inputs: str = ""
    batch_size: int = 0
    student_latency_ms: float | None = None
    teacher_latency_ms: float | None = None
    student_params: int = 0
    teacher_params: int | None = None

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self.files)

    def lines(self) -> list[str]:
        """A short human-readable account, one line per file."""
        out = [f"Run {self.run_id} ({self.run_name}): student exported to {self.out_dir}",
               f"Checked on {self.inputs}"]
        for item in self.files:
            check = ""
            if item.max_abs_diff is not None:
                check = (f"  max |diff| {item.max_abs_diff:.2e} ({item.checked_with})"
                         + ("" if item.ok else "  MISMATCH"))
            elif item.checked_with:
                check = f"  {item.checked_with}"
            out.append(f"  {item.path.name:<22} {_size_text(item.size_bytes):>9}{check}")
        if self.student_latency_ms is not None:
            line = (f"CPU latency per batch of {self.batch_size}: student "
                    f"{self.student_latency_ms:.3f} ms")
            if self.teacher_latency_ms is not None:
                line += f", teacher {self.teacher_latency_ms:.3f} ms"
            out.append(line)
        return out


def _size_text(size: int) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):.2f} MiB"
    if size >= 1 << 10:
        return f"{size / (1 << 10):.1f} KiB"
    return f"{size} B"

