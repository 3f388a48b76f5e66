"""Every distillation method on MNIST-1D and Fashion-MNIST: teacher, student alone and each
method, test accuracy mean ± std over seeds, parameter counts and wall time.

Per dataset and seed, one run trains the teacher, the student alone (baseline) and the KD
student; every other method then distils from that run's teacher checkpoint into the same
student initialisation. Each method uses its `suggested` weights and default parameters
(CRD with 1,024 negatives; DKD's KD weight warmed up over the first twelfth of the epochs, as
the paper's 20 of 240); hint layers are the first blocks. The student is a small CNN, so the
feature-map methods (AT, NST) apply too. MNIST-1D trains with SGD (0.05, Nesterov),
Fashion-MNIST with Adam (0.002), both with a cosine schedule.

    python bench/methods.py                                   # full: 3 seeds, all data
    python bench/methods.py --seeds 0 --epochs 5 --subset 10000 --datasets mnist1d
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS,
    PhaseClock,
    add_threads_option,
    apply_threads,
    mean_std,
    table,
    write_result,
)

from kdstudio.core.config import RunConfig  # noqa: E402
from kdstudio.core.distill.methods import METHODS  # noqa: E402
from kdstudio.core.engine import run  # noqa: E402
from kdstudio.core.store import Store  # noqa: E402

DATASETS: dict[str, dict[str, Any]] = {
    "mnist1d": {
        "batch_size": 100, "params": {}, "optim": ("sgd", 0.05),
        "teacher": {"channels": [64, 64, 64], "kernel_size": 5},
        "student": {"channels": [4], "kernel_size": 5},
    },
    "fashion-mnist": {
        "batch_size": 128, "params": {"train_limit": 0}, "optim": ("adam", 0.002),
        "teacher": {"channels": [32, 64]},
        "student": {"channels": [2, 4]},
    },
}
LAYERS = ("block1", "block1")


def base_config(dataset: str, seed: int, epochs: int, teacher_epochs: int,
                subset: int) -> RunConfig:
    setting = DATASETS[dataset]
    config = RunConfig(name=f"bench-{dataset}-s{seed}", seed=seed, device="cpu")
    config.data.dataset, config.data.batch_size = dataset, setting["batch_size"]
    config.data.params = dict(setting["params"])
    if dataset == "fashion-mnist":
        config.data.params["train_limit"] = subset
    config.teacher.arch, config.teacher.params = "cnn", dict(setting["teacher"])
    config.teacher.epochs = teacher_epochs
    config.student.arch, config.student.params = "cnn", dict(setting["student"])
    config.optim.name, config.optim.lr = setting["optim"]
    config.optim.momentum, config.optim.schedule, config.optim.epochs = 0.9, "cosine", epochs
    return config


def configure_method(config: RunConfig, method: str) -> RunConfig:
    """The method with its suggested weights, default parameters and the hint layers."""
    config = config.copy()
    cls = METHODS.get(method)
    d = config.distill
    d.method, d.temperature = method, 4.0
    d.ce_weight, d.kd_weight, d.feature_weight = 1.0, 1.0, 0.0
    for key, value in cls.suggested.items():
        setattr(d, key, value)
    d.student_layer, d.teacher_layer = LAYERS if cls.uses_hint_layers else ("", "")
    d.params = {"negatives": 1024} if method == "crd" else {}
    if method == "dkd":
        d.schedules = {"kd_weight": {"kind": "warmup",
                                     "epochs": max(1, round(config.optim.epochs / 12))}}
    return config


def adapter_parameters(logs: list[str]) -> int:
    for line in logs:
        found = re.search(r"trainable adapter of ([0-9,]+) parameters", line)
        if found:
            return int(found.group(1).replace(",", ""))
    return 0


def run_seed(dataset: str, seed: int, args: argparse.Namespace, store: Store,
             results: dict[str, list[dict[str, Any]]]) -> None:
    base = base_config(dataset, seed, args.epochs, args.teacher_epochs, args.subset)
    methods = [m for m in args.methods if m != "kd"]
    clock = PhaseClock()
    first = run(configure_method(base, "kd"), store, clock)
    if first.status != "completed":
        raise SystemExit(f"{dataset} seed {seed}: {first.error}")
    s = first.summary
    results.setdefault("teacher", []).append({
        "acc": s["teacher_test_acc"], "seconds": clock.phase_seconds["teacher"],
        "params": s["teacher_params"]})
    results.setdefault("none", []).append({
        "acc": s["baseline_test_acc"], "seconds": clock.phase_seconds["baseline"],
        "params": s["student_params"]})
    if "kd" in args.methods:
        results.setdefault("kd", []).append({
            "acc": s["student_test_acc"], "seconds": clock.phase_seconds["student"],
            "params": s["student_params"], "adapter": 0,
            "gain": s["student_test_acc"] - s["baseline_test_acc"]})
    checkpoint = store.artifacts(first.run_id, "teacher")[0]["path"]
    for method in methods:
        config = configure_method(base, method)
        config.teacher.checkpoint, config.teacher.epochs = checkpoint, 0
        config.distill.baseline = False
        clock = PhaseClock()
        started = time.perf_counter()
        result = run(config, store, clock)
        if result.status != "completed":
            raise SystemExit(f"{dataset} seed {seed} {method}: {result.error}")
        acc = result.summary["student_test_acc"]
        results.setdefault(method, []).append({
            "acc": acc, "seconds": clock.phase_seconds["student"],
            "params": result.summary["student_params"], "adapter": adapter_parameters(clock.logs),
            "gain": acc - s["baseline_test_acc"]})
        print(f"  {dataset} seed {seed} {method:8s} test {acc:.2%} "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)


def dataset_table(dataset: str, results: dict[str, list[dict[str, Any]]]) -> str:
    rows = []
    for name in results:
        entries = results[name]
        label = {"teacher": "teacher (CNN)", "none": "student alone"}.get(
            name, METHODS.get(name).label if name in METHODS else name)
        accs = [e["acc"] for e in entries]
        gains = [e["gain"] for e in entries if "gain" in e]
        adapter = entries[0].get("adapter", 0)
        params = f"{entries[0]['params']:,}" + (f" (+{adapter:,} adapter)" if adapter else "")
        rows.append([label, params, mean_std(accs, 100, 2), mean_std(gains, 100, 2) if gains
                     else "", f"{statistics.fmean(e['seconds'] for e in entries):.1f}"])
    return f"**{dataset}**\n\n" + table(
        ["model / method", "parameters", "test acc %", "gain vs alone (points)",
         "train wall time s"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20, help="student epochs")
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--subset", type=int, default=0,
                        help="Fashion-MNIST training images to load (0 = all 60,000)")
    methods = [m for m in METHODS.names() if m != "none"]
    parser.add_argument("--methods", nargs="+", default=methods, choices=methods)
    add_threads_option(parser)
    args = parser.parse_args()
    apply_threads(args)
    tables, raw = [], {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for dataset in args.datasets:
            results: dict[str, list[dict[str, Any]]] = {}
            with Store(Path(folder) / f"{dataset}.db") as store:
                for seed in args.seeds:
                    run_seed(dataset, seed, args, store, results)
            tables.append(dataset_table(dataset, results))
            raw[dataset] = results
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "methods.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
    subset = f", Fashion-MNIST train_limit {args.subset}" if args.subset else ""
    body = "\n\n".join(tables) + (
        f"\n\nSeeds {', '.join(map(str, args.seeds))}; teacher {args.teacher_epochs} epochs, "
        f"students {args.epochs} epochs{subset}; optimisers as in the script. Test accuracy on "
        "the official test split; gain = method - student alone of the same seed; wall time = "
        "that phase's training (teacher outputs cached). Total "
        f"{(time.perf_counter() - started) / 60:.1f} min on a shared CPU.")
    write_result("methods", "Distillation methods", body)


if __name__ == "__main__":
    main()
