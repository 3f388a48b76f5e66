"""Normalisation statistics: computed in chunks (so files can be streamed through), and
cached on disk by what they depend on, so a dataset's second run does not compute them.

The cache is one small JSON file per key in `cache_dir()/stats`; the key is a sha256 of the
dataset's name, resolved path, parameters, split fractions and seed, and the size and
modification time of every file it reads. A cache that cannot be read or written is
simply not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from kdstudio.core.paths import cache_dir

STATS_CHUNK = 256  # examples per chunk of the streamed statistics
STATS_VERSION = 1  # bump when the way statistics are computed changes


def streamed_stats(chunks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per channel of (N, C, ...) chunks (one value for flat (N, D) data),
    combined chunk by chunk in float64 (Chan et al.), so nothing needs all the data at once.
    The same chunks in the same order give the same bits."""
    count, mean, m2 = 0, None, None
    for chunk in chunks:
        values = np.asarray(chunk, dtype=np.float64)
        if values.ndim <= 2:
            values = values.reshape(-1, 1)
        else:
            values = np.moveaxis(values, 1, -1).reshape(-1, values.shape[1])
        n = len(values)
        if n == 0:
            continue
        chunk_mean = values.mean(axis=0)
        chunk_m2 = ((values - chunk_mean) ** 2).sum(axis=0)
        if mean is None:
            count, mean, m2 = n, chunk_mean, chunk_m2
            continue
        total = count + n
        delta = chunk_mean - mean
        mean = mean + delta * (n / total)
        m2 = m2 + chunk_m2 + delta**2 * (count * n / total)
        count = total
    if mean is None:
        raise ValueError("no training examples to compute normalisation statistics from")
    std = np.sqrt(m2 / count)
    return mean.astype(np.float64), np.maximum(std, 1e-8).astype(np.float64)


def path_stamps(path: str, files: Iterable[str] | None = None) -> list[tuple[str, int, int]]:
    """(name, size, mtime in ns) of `files`, else of the file `path` or every file under the
    folder `path`; empty for no path."""
    if files is None:
        if not path:
            return []
        root = Path(path).expanduser()
        if root.is_file():
            files = [str(root)]
        else:
            found = []
            for folder, _dirs, names in os.walk(root):
                found.extend(os.path.join(folder, name) for name in names)
            files = sorted(found)
    stamps = []
    for file in files:
        try:
            status = os.stat(file)
        except OSError:  # a dangling link in a folder, say: the dataset says if it matters
            continue
        stamps.append((str(file), status.st_size, status.st_mtime_ns))
    return stamps


def stats_key(name: str, path: str, params: dict[str, Any], split: dict[str, Any],
              stamps: list[tuple[str, int, int]]) -> str:
    """The cache key of a dataset's statistics."""
    resolved = str(Path(path).expanduser().resolve()) if path else ""
    digest = hashlib.sha256(json.dumps(
        {"version": STATS_VERSION, "dataset": name, "path": resolved, "params": params,
         "split": split}, sort_keys=True, default=str).encode())
    for stamp in stamps:
        digest.update(repr(stamp).encode())
    return digest.hexdigest()


def cached_stats(key: str, compute: Callable[[], tuple[np.ndarray, np.ndarray]]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The statistics stored under `key`, else `compute()`'s, stored for next time."""
    file = cache_dir() / "stats" / f"{key}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        stored = json.loads(file.read_text(encoding="utf-8"))
        return np.asarray(stored["mean"], np.float64), np.asarray(stored["std"], np.float64)
    mean, std = compute()
    with contextlib.suppress(OSError):
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({"mean": mean.tolist(), "std": std.tolist()}),
                           encoding="utf-8")
        partial.replace(file)
    return mean, std
