"""How much memory this machine can give a run, and byte counts written for people."""

from __future__ import annotations

import os
from pathlib import Path

# when the operating system does not say: a machine-sized cap, so no config that plainly
# cannot fit is ever tried
FALLBACK_AVAILABLE = 64 * 10**9


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (psutil, /proc/meminfo, sysconf)."""
    try:
        import psutil  # type: ignore[import-not-found]

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return FALLBACK_AVAILABLE


def format_bytes(count: float) -> str:
    """`count` bytes in decimal units: 512 B, 3.7 GB, 480.0 TB."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB")
    step = 0
    while abs(count) >= 1000 and step < len(units) - 1:
        count /= 1000
        step += 1
    return f"{count:.0f} B" if step == 0 else f"{count:.1f} {units[step]}"


def memory_problem(what: str, need: int) -> str | None:
    """A sentence saying that `what` would need more memory than is available, or None."""
    available = available_memory()
    if need <= available:
        return None
    return (f"{what} would need {format_bytes(need)} of memory; this machine has "
            f"{format_bytes(available)} available")
