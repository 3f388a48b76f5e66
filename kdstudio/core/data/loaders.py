"""Which loader a run reads its batches with (`data.loader`), and what augmentation needs.

`memory` decodes the whole dataset once into tensors; `stream` reads batches through a
`torch.utils.data` loader (files decoded as they are needed); `auto` is memory when the
decoded data fits MEMORY_BUDGET_BYTES and no augmentation is asked, else stream.
"""

from __future__ import annotations

import os

from kdstudio.core.memory import format_bytes

MEMORY_BUDGET_BYTES = 2 * 10**9  # auto keeps decoded data up to this size in memory
BUDGET_VARIABLE = "KDSTUDIO_MEMORY_BUDGET_MB"  # overrides it, in megabytes (10^6 bytes)
AUGMENTATIONS = ("crop-flip",)


def memory_budget() -> int:
    """Bytes of decoded data `auto` keeps in memory; raises ValueError for a bad override."""
    text = os.environ.get(BUDGET_VARIABLE, "").strip()
    if not text:
        return MEMORY_BUDGET_BYTES
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = -1.0
    if not megabytes >= 0 or megabytes == float("inf"):
        raise ValueError(f"environment variable {BUDGET_VARIABLE} must be a number of "
                         f"megabytes >= 0 (got {text!r})")
    return int(megabytes * 10**6)


def choose_loader(requested: str, augment: str, decoded_bytes: int, workers: int
                  ) -> tuple[str, str]:
    """(memory or stream, the run log's line saying which and why)."""
    size = format_bytes(decoded_bytes)
    if requested in ("memory", "stream"):
        chosen, why = requested, f"data.loader = {requested}; the decoded data is {size}"
    elif augment != "none":
        chosen, why = "stream", f"data.loader = auto and data.augment = {augment}"
    else:
        budget = memory_budget()
        fits = decoded_bytes <= budget
        chosen = "memory" if fits else "stream"
        why = (f"data.loader = auto: the decoded data, {size}, "
               f"{'fits' if fits else 'is over'} the memory budget of {format_bytes(budget)}"
               f"{'' if fits else f' (${BUDGET_VARIABLE} sets it)'}")
    how = (f"stream, {workers} worker process{'es' if workers != 1 else ''}"
           if chosen == "stream" else "memory")
    return chosen, f"Loader: {how} ({why})"


def augment_problem(augment: str, input_shape: tuple[int, ...]) -> str | None:
    """Why `augment` cannot apply to inputs of `input_shape`, or None."""
    if augment in AUGMENTATIONS and len(input_shape) != 3:
        return (f"data.augment: {augment} needs images shaped (C, H, W); this dataset gives "
                f"inputs shaped {tuple(input_shape)} (use data.augment = none)")
    return None
