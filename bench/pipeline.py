"""Input pipeline: one epoch of the student phase through `data.loader = "stream"` against a
bare `torch.utils.data` loop over the same PNG folder, and the peak memory of stream runs
on a folder larger than the memory budget against a memory run.

Fashion-MNIST is written once as an image folder (`train/` and `test/`, one sub-folder per
class, 70,000 PNG files; a `.complete` marker when done, so later calls reuse it). Both
sides train the same MLP student (same initial weights, fused SGD with Nesterov momentum,
constant learning rate, batch 128) for one epoch over the same training files (the engine's
train split), decoding each file with Pillow (float32 / 255, normalised with the engine's
statistics) through a `DataLoader` with 0, 1 or 2 worker processes, in the engine's order,
then validate over the validation files through a `DataLoader` with as many workers. The
bare loop is written as usual: a per-image `Dataset` and the default collate.

What is timed, on both sides: from asking the loader for the first batch (the workers start
there) to the end of the validation. Not timed: process start, imports, listing the folder,
statistics, the engine's history row. Two measurements:

1. Interleaved, in one process: the bare loop takes one step before every engine step
   (through the engine's `should_stop`); the engine's time is its epoch less the bare
   loop's steps. Both see the same swings of a shared machine's speed; with workers, both
   loaders' workers run side by side on the same cores.
2. Separate runs, each configuration in its own process (so each peak RSS is its own),
   every worker count in each round, engine and bare in alternating order.

    python bench/pipeline.py                               # 70,000 images, 3 rounds
    python bench/pipeline.py --limit 5000 --repeats 1      # a quick check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PhaseClock, table, write_result  # noqa: E402

from kdstudio.core.data.files import (  # noqa: E402
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DEFAULT,
    IDX_FILES,
    find_idx_file,
    read_idx,
)

BATCH, SEED, VAL_FRACTION, LR = 128, 0, 0.1, 0.05
STUDENT = {"hidden_sizes": [64]}
MARKER = ".complete"  # hidden: the image-folder dataset skips it
BUDGET_SHARE = 4  # the memory run's budget (KDSTUDIO_MEMORY_BUDGET_MB): a quarter of the
# decoded folder, so that data.loader = auto streams it


# ---------------------------------------------------------------- the folder


def class_folder(label: int) -> str:
    """A folder name per class that sorts in label order ("0-T-shirt-top", "1-Trouser", ...)."""
    return f"{label}-{FASHION_MNIST_CLASSES[label].replace('/', '-')}"


def write_folder(folder: Path, limit: int, source: Path = Path(FASHION_MNIST_DEFAULT)) -> int:
    """Fashion-MNIST as PNG files under `folder` (`limit` training images, 0 = all, and a
    sixth as many test images); a folder already written for this `limit` is kept as it is.
    Returns the number of files."""
    marker = folder / MARKER
    wanted = {"limit": limit}
    if marker.is_file() and json.loads(marker.read_text())["limit"] == limit:
        return int(json.loads(marker.read_text())["files"])
    from PIL import Image

    arrays = {key: read_idx(find_idx_file(source, stem)) for key, stem in IDX_FILES.items()}
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    files = 0
    for split, (x, y) in {"train": (arrays["x_train"], arrays["y_train"]),
                          "test": (arrays["x_test"], arrays["y_test"])}.items():
        count = len(y) if not limit else min(len(y), limit if split == "train" else limit // 6)
        for label in range(len(FASHION_MNIST_CLASSES)):
            (partial / split / class_folder(label)).mkdir(parents=True)
        for index in range(count):
            target = partial / split / class_folder(int(y[index])) / f"{index:05d}.png"
            Image.fromarray(x[index]).save(target)
        files += count
    (partial / MARKER).write_text(json.dumps(wanted | {"files": files}))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return files


# ---------------------------------------------------------------- measuring a process


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants (from /proc's children lists)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        with contextlib.suppress(OSError, ValueError):  # the process has gone
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
            pending += [int(c) for c in children.split()]
    return found


def _memory_kb(pid: int) -> tuple[int, int]:
    """(resident, private) kB of a process: its RSS, and the pages only it maps (USS)."""
    fields = {}
    with contextlib.suppress(OSError, ValueError):  # the process has gone
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("Rss", "Private_Clean", "Private_Dirty"):
                fields[name] = int(value.split()[0])
    return (fields.get("Rss", 0),
            fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0))


class TreeMemory(threading.Thread):
    """Samples the memory of a process and its workers: the main process's RSS plus each
    descendant's private pages (what a forked worker adds; the pages it shares with its
    parent are counted once, in the parent). Keeps the peak."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak_kb = pid, every, 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            main, *workers = _tree(self.pid)
            total = _memory_kb(main)[0] + sum(_memory_kb(w)[1] for w in workers)
            self.peak_kb = max(self.peak_kb, total)
            self.done.wait(self.every)


def run_child(kind: str, args: argparse.Namespace, workers: int, loader: str = "stream",
              budget_mb: int = 0, sample_memory: bool = False) -> dict[str, Any]:
    """One configuration in its own process; its JSON result (and, when `sample_memory`,
    the peak memory of its process tree)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind,
               "--folder", str(args.folder), "--workers", str(workers), "--loader", loader,
               "--threads", str(args.threads), "--plan", str(args.plan),
               "--batch", str(args.batch)]
    env = dict(os.environ)
    env.pop("KDSTUDIO_MEMORY_BUDGET_MB", None)
    if budget_mb:
        env["KDSTUDIO_MEMORY_BUDGET_MB"] = str(budget_mb)
    load = os.getloadavg()[0]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    sampler = TreeMemory(process.pid) if sample_memory else None
    if sampler:
        sampler.start()
    out, _ = process.communicate()
    if sampler:
        sampler.done.set()
        sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{kind} run with {workers} workers failed (exit {process.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    result["load"] = load
    if sampler:
        result["tree_mb"] = sampler.peak_kb / 1024
    return result


# ---------------------------------------------------------------- the split both sides use


def make_plan(folder: Path, path: Path) -> None:
    """The training and validation files (the engine's split of train/) and the statistics
    the engine normalises them with (computed as it does), written to `path` for the bare
    runs."""
    from kdstudio.core.data import split_rows
    from kdstudio.core.data.image_folder import decode, read_layout
    from kdstudio.core.data.stats import STATS_CHUNK, streamed_stats

    layout = read_layout(str(folder))
    files = [(str(f), label) for label, per_class in enumerate(layout.splits["train"])
             for f in per_class]
    train_rows, val_rows, _ = split_rows(len(files), True, VAL_FRACTION, SEED, 0.2)
    train = [files[i] for i in train_rows]
    mean, std = streamed_stats(
        np.stack([decode(Path(f), "L", (28, 28)) for f, _ in train[start:start + STATS_CHUNK]])
        for start in range(0, len(train), STATS_CHUNK))
    path.write_text(json.dumps({"train": train, "val": [files[i] for i in val_rows],
                                "mean": mean.tolist(), "std": std.tolist()}))


# ---------------------------------------------------------------- the bare loop


def weights_sum(model: torch.nn.Module) -> float:
    """The sum of |w| over a model's parameters: equal on both sides when they trained alike."""
    return float(sum(p.detach().double().abs().sum() for p in model.parameters()))


class PngFiles(torch.utils.data.Dataset):
    """(image, label) pairs from PNG files: Pillow decode, float32 / 255, normalised (in
    float64, then float32, as the engine does)."""

    def __init__(self, files: list[tuple[str, int]], mean: float, std: float) -> None:
        self.files, self.mean, self.std = files, np.float64(mean), np.float64(std)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.files[index]
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.float32) / np.float32(255.0)
        normalised = ((pixels[None] - self.mean) / self.std).astype(np.float32)
        return torch.from_numpy(normalised), label


class BareLoop:
    """The hand-written loop over the folder, one training step per `step()` call."""

    def __init__(self, args: argparse.Namespace) -> None:
        from kdstudio.core.models import create_model

        plan = json.loads(Path(args.plan).read_text())
        torch.set_num_threads(args.threads)
        self.train = PngFiles(plan["train"], plan["mean"][0], plan["std"][0])
        self.val = PngFiles(plan["val"], plan["mean"][0], plan["std"][0])
        self.workers = args.workers
        torch.manual_seed(SEED + 1)
        self.student = create_model("mlp", (1, 28, 28), 10, **STUDENT)
        self.optimizer = torch.optim.SGD(self.student.parameters(), lr=LR, momentum=0.9,
                                         nesterov=True, fused=True)
        torch.manual_seed(SEED + 2)
        # the engine's order; shuffle=True would differ, as the loader's iterator draws its
        # workers' base seed from the generator before the sampler does
        order = torch.randperm(len(self.train),
                               generator=torch.Generator().manual_seed(SEED + 3))
        self.loader = torch.utils.data.DataLoader(
            self.train, batch_size=args.batch, sampler=order.tolist(), num_workers=args.workers)
        self.batches: Any = None
        self.steps, self.seconds, self.val_acc = len(self.loader), 0.0, 0.0

    def step(self) -> None:
        """The next batch (the workers start at the first) and one optimiser step."""
        started = time.perf_counter()
        if self.batches is None:
            self.student.train()
            self.batches = iter(self.loader)
        x, y = next(self.batches)
        loss = torch.nn.functional.cross_entropy(self.student(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.seconds += time.perf_counter() - started

    def validate(self) -> None:
        """Accuracy over the validation files, read through a DataLoader as in training."""
        started = time.perf_counter()
        self.student.eval()
        correct = 0
        with torch.no_grad():
            for x, y in torch.utils.data.DataLoader(self.val, batch_size=1024,
                                                    num_workers=self.workers):
                correct += int((self.student(x).argmax(1) == y).sum())
        self.val_acc = correct / len(self.val)
        self.seconds += time.perf_counter() - started

    def result(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "samples": len(self.train), "val": len(self.val),
                "weights": weights_sum(self.student), "val_acc": self.val_acc}


def bare_child(args: argparse.Namespace) -> dict[str, Any]:
    """One epoch of the hand-written loop."""
    bare = BareLoop(args)
    for _ in range(bare.steps):
        bare.step()
    bare.validate()
    return bare.result()


# ---------------------------------------------------------------- the engine


def engine_child(args: argparse.Namespace, bare: BareLoop | None = None) -> dict[str, Any]:
    """One engine run of the student phase alone (method "none"), one epoch. With `bare`,
    the bare loop takes one step before every engine step (through `should_stop`) and
    validates after the engine's epoch; the time spent in it is not the engine's."""
    from kdstudio.core.checkpoint import load_weights
    from kdstudio.core.config import RunConfig
    from kdstudio.core.engine import run
    from kdstudio.core.events import Epoch, Event, PhaseStarted
    from kdstudio.core.models import create_model
    from kdstudio.core.store import Store

    config = RunConfig(name=f"pipeline-{args.loader}-{args.workers}", seed=SEED, device="cpu")
    d = config.data
    d.dataset, d.path = "image-folder", str(args.folder)
    d.params = {"image_size": [28, 28], "channels": 1}
    d.loader, d.workers, d.batch_size = args.loader, args.workers, args.batch
    d.val_fraction = VAL_FRACTION
    config.distill.method, config.distill.baseline = "none", False
    config.distill.ce_weight = 1.0  # plain cross-entropy, as the bare loop
    config.student.arch, config.student.params = "mlp", dict(STUDENT)
    o = config.optim
    o.name, o.lr, o.momentum, o.schedule, o.epochs = "sgd", LR, 0.9, "constant", 1
    config.threads = args.threads
    marks = {"harness": 0.0}
    clock = PhaseClock()

    def on_event(event: Event) -> None:
        clock(event)
        if isinstance(event, PhaseStarted) and event.phase == "student":
            marks["start"] = time.perf_counter()
        elif isinstance(event, Epoch) and event.phase == "student":
            marks["end"] = time.perf_counter()
            if bare is not None:
                bare.validate()

    def should_stop() -> bool:
        if bare is not None and "start" in marks:
            started = time.perf_counter()
            bare.step()
            marks["harness"] += time.perf_counter() - started
        return False

    with tempfile.TemporaryDirectory() as scratch:
        store = Store(Path(scratch) / "runs.db")
        result = run(config, store, on_event, should_stop)
        if result.status != "completed":
            raise SystemExit(f"engine run {result.status}: {result.error}")
        student = create_model("mlp", (1, 28, 28), 10, **STUDENT)
        load_weights(student, store.artifacts(result.run_id, "student")[0]["path"])
        store.close()
    plan = json.loads(Path(args.plan).read_text())
    engine = {"seconds": marks["end"] - marks["start"] - marks["harness"],
              "samples": len(plan["train"]), "val": len(plan["val"]),
              "weights": weights_sum(student),
              "val_acc": result.summary["student_last_val_acc"],
              "loader": next((m.split(" (")[0].removeprefix("Loader: ") for m in clock.logs
                              if m.startswith("Loader: ")), "?")}
    return engine if bare is None else {"engine": engine, "bare": bare.result()}


def interleaved_child(args: argparse.Namespace) -> dict[str, Any]:
    return engine_child(args, BareLoop(args))


# ---------------------------------------------------------------- the harness


def median_range(values: list[float]) -> str:
    ordered = sorted(values)
    if len(ordered) == 1:
        return f"**{ordered[0]:.3f}**"
    return (f"**{statistics.median(ordered):.3f}** ({ordered[0]:.3f} - {ordered[-1]:.3f})")


def rate(result: dict[str, Any]) -> float:
    return result["samples"] / result["seconds"]


def same(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """Whether each engine run ended with the bare loop's weights, bit for bit."""
    equal = sum(e["weights"] == b["weights"] for e, b in pairs)
    return "yes" if equal == len(pairs) else f"{equal} of {len(pairs)}"


def pair_row(workers: int, pairs: list[tuple[dict[str, Any], dict[str, Any]]],
             rss: bool) -> list[Any]:
    loads = [side["load"] for pair in pairs for side in pair]
    row = [workers, len(pairs), f"{statistics.median(rate(b) for _, b in pairs):,.0f}",
           f"{statistics.median(rate(e) for e, _ in pairs):,.0f}",
           median_range([rate(e) / rate(b) for e, b in pairs]),
           f"{pairs[-1][1]['val_acc']:.2%} / {pairs[-1][0]['val_acc']:.2%}", same(pairs)]
    if rss:
        row.append(f"{statistics.median(b['rss_mb'] for _, b in pairs):.0f} / "
                   f"{statistics.median(e['rss_mb'] for e, _ in pairs):.0f}")
    return [*row, f"{min(loads):.2f} - {max(loads):.2f}"]


def interleaved_rows(args: argparse.Namespace, log: list[str]) -> list[list[Any]]:
    """Engine runs in which the bare loop takes one step before every engine step."""
    runs: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = {
        w: [] for w in args.interleaved_workers}
    for repeat in range(args.repeats):
        for workers in args.interleaved_workers:
            both = run_child("interleaved", args, workers)
            both["engine"]["load"] = both["bare"]["load"] = both["load"]
            runs[workers].append((both["engine"], both["bare"]))
            log.append(f"interleaved, round {repeat + 1}, {workers} workers: engine "
                       f"{rate(both['engine']):,.0f}, bare {rate(both['bare']):,.0f} "
                       f"samples/s, load {both['load']:.2f}")
            print(log[-1], flush=True)
    return [pair_row(w, pairs, rss=False) for w, pairs in runs.items()]


def separate_rows(args: argparse.Namespace, log: list[str]) -> list[list[Any]]:
    """Engine and bare runs, each in its own process; each round runs every worker count,
    engine and bare in alternating order, so that drifting load hits them all alike."""
    runs: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = {
        w: [] for w in args.workers_list}
    for repeat in range(args.repeats):
        for workers in args.workers_list:
            order = ("engine", "bare") if repeat % 2 == 0 else ("bare", "engine")
            pair = {kind: run_child(kind, args, workers) for kind in order}
            runs[workers].append((pair["engine"], pair["bare"]))
            for kind in order:
                log.append(f"separate, round {repeat + 1}, {workers} workers, {kind}: "
                           f"{rate(pair[kind]):,.0f} samples/s, load {pair[kind]['load']:.2f}")
                print(log[-1], flush=True)
    return [pair_row(w, pairs, rss=True) for w, pairs in runs.items()]


def memory_rows(args: argparse.Namespace, budget_mb: int) -> list[list[Any]]:
    """Stream runs (data.loader = auto under a budget below the folder's decoded size)
    and a memory run, with the peak memory of each run's processes."""
    rows = []
    runs = [("auto", budget_mb, w) for w in args.memory_workers]
    for loader, budget, workers in runs + [("memory", 0, 0)] * bool(runs):
        result = run_child("engine", args, workers, loader, budget, True)
        rows.append([f"{loader}: {result['loader']}",
                     f"{budget} MB" if budget else "2,000 MB (default)",
                     f"{rate(result):,.0f}", f"{result['rss_mb']:.0f}",
                     f"{result['tree_mb']:.0f}", f"{result['load']:.2f}"])
    return rows


def measure(args: argparse.Namespace) -> None:
    started = time.time()
    files = write_folder(args.folder, args.limit)
    print(f"folder {args.folder}: {files:,} PNG files ({time.time() - started:.0f} s)",
          flush=True)
    args.plan = args.folder.with_name(args.folder.name + ".plan.json")
    make_plan(args.folder, args.plan)
    plan = json.loads(args.plan.read_text())
    decoded_mb = files * 28 * 28 * 4 / 1e6
    budget_mb = max(1, round(decoded_mb / BUDGET_SHARE))
    began, log = time.strftime("%H:%M", time.gmtime()), []
    interleaved = interleaved_rows(args, log)
    separate = separate_rows(args, log)
    memory = memory_rows(args, budget_mb)
    ended = time.strftime("%H:%M", time.gmtime())
    pair_headers = ["workers", "pairs", "bare loop samples/s", "engine (stream) samples/s",
                    "ratio engine / bare: median (range)", "val acc bare / engine",
                    "same weights after the epoch"]
    body = "\n\n".join([
        f"{files:,} PNG files; one epoch over {len(plan['train']):,} training images, then "
        f"validation over {len(plan['val']):,}; batch {args.batch}; MLP student "
        f"{STUDENT['hidden_sizes']}, fused SGD (Nesterov), {args.threads} torch thread(s). "
        f"Measured {began}-{ended} UTC.",
        "### Interleaved step by step, in one process (the bare loop takes one step before "
        "every engine step)",
        table([*pair_headers, "load average (1 min)"], interleaved),
        "### Separate runs, each in its own process (engine and bare alternating)",
        table([*pair_headers, "peak RSS MB bare / engine (main process)",
               "load average (1 min)"], separate),
        f"### Peak memory: stream runs over a folder larger than the memory budget "
        f"(KDSTUDIO_MEMORY_BUDGET_MB={budget_mb}, a quarter of the decoded "
        f"{decoded_mb:.0f} MB) against a memory run",
        table(["data.loader: chosen", "memory budget", "samples/s",
               "peak RSS MB (main process, VmHWM)",
               "peak MB: main RSS + workers' private pages (sampled every 0.1 s)",
               "load average (1 min)"], memory),
        "Timed on both sides: one epoch, from asking the loader for its first batch (the "
        "workers start there) to the end of the validation pass over the validation files "
        "after the last step: decode with Pillow, normalise, collate, forward, backward, "
        "fused SGD step, validation. Not timed: process start, imports, listing the folder, "
        "normalisation statistics (the bare loop gets the engine's). Interleaved, the "
        "engine's time is its epoch less the time spent in the bare loop's steps. Ratio = "
        "engine samples/s / bare samples/s (goal >= 0.95). Same weights: the engine's saved "
        "student equals the bare loop's, bit for bit (same files, order, initial weights "
        "and optimiser).",
        "Each run, in order:\n\n" + "\n".join(f"- {line}" for line in log),
    ])
    write_result("pipeline", "Input pipeline: stream loader against a bare DataLoader loop",
                 body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=None,
                        help="where the PNG folder is written (default "
                             "/tmp/kd-bench/fashion-png, or fashion-png-LIMIT)")
    parser.add_argument("--limit", type=int, default=0,
                        help="training images to write (0 = all 60,000; a sixth as many test)")
    parser.add_argument("--workers", dest="workers_list", type=int, nargs="+",
                        default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=3,
                        help="pairs of runs (engine, bare) per worker count")
    parser.add_argument("--interleaved-workers", type=int, nargs="*", default=[0, 1, 2],
                        help="worker counts measured interleaved step by step (none: skip)")
    parser.add_argument("--memory-workers", type=int, nargs="*", default=[0, 2],
                        help="workers of the stream runs whose memory is measured against "
                             "a memory run (none: no memory runs)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--batch", type=int, default=BATCH, help="batch size")
    parser.add_argument("--child", choices=["engine", "bare", "interleaved"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--loader", default="stream", help=argparse.SUPPRESS)
    parser.add_argument("--plan", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.folder is None:
        name = "fashion-png" + (f"-{args.limit}" if args.limit else "")
        args.folder = Path(tempfile.gettempdir()) / "kd-bench" / name
    if args.child:
        args.workers = args.workers_list[0]
        child = {"engine": engine_child, "bare": bare_child, "interleaved": interleaved_child}
        result = child[args.child](args)
        print(json.dumps(result | {"rss_mb": peak_rss_mb()}))
        return
    args.folder.parent.mkdir(parents=True, exist_ok=True)
    measure(args)


if __name__ == "__main__":
    main()
