"""Does choosing a big dataset in the form, and pressing Start, stall the window?

A CIFAR-10 folder of about 150 MB (binary and python versions, random pixels) is written
once; the real MainWindow then gets the dataset and the folder typed into its path field,
shows the preview, and Start is pressed; the run is stopped once it trains. A 10 ms precise
QTimer in the GUI thread records when it fires: the worst gap between beats is the longest
the GUI thread was kept from its event loop, per stage. For comparison, the time that the
same data check (`data_problems`, cold caches) takes when called on the GUI thread, as the
form did before the check moved off it.

    python bench/data_preview.py                  # offscreen, both versions
    python bench/data_preview.py --records 20000  # smaller folders
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HEARTBEAT_MS = 10
TRAIN_BATCHES = 5
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
         "truck"]


def write_cifar(folder: Path, version: str, records: int) -> int:
    """A CIFAR-10 folder of `records` training images (5 batches) and records / 5 test
    images; returns its size in bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    per_batch = records // TRAIN_BATCHES
    batches = [f"data_batch_{i}" for i in range(1, TRAIN_BATCHES + 1)] + ["test_batch"]
    for name in batches:
        count = per_batch if name != "test_batch" else records // 5
        pixels = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, count)
        if version == "binary":
            rows = np.concatenate([labels[:, None].astype(np.uint8), pixels], axis=1)
            (folder / f"{name}.bin").write_bytes(rows.tobytes())
        else:
            with (folder / name).open("wb") as handle:
                pickle.dump({b"data": pixels, b"labels": labels.tolist()}, handle, protocol=4)
    if version == "binary":
        (folder / "batches.meta.txt").write_text("\n".join(NAMES) + "\n")
    else:
        with (folder / "batches.meta").open("wb") as handle:
            pickle.dump({b"label_names": [n.encode() for n in NAMES]}, handle, protocol=4)
    return sum(p.stat().st_size for p in folder.iterdir())


def clear_caches() -> None:
    from kdstudio.core.data import cifar

    cifar._first_problem.cache_clear()


def synchronous_check_s(folder: Path) -> float:
    """Seconds the data check takes when run on the calling thread (cold caches)."""
    from kdstudio.core.config import RunConfig
    from kdstudio.core.config.validation import data_problems

    config = RunConfig()
    config.data.dataset, config.data.path = "cifar10", str(folder)
    clear_caches()
    started = time.perf_counter()
    problems, _info = data_problems(config)
    elapsed = time.perf_counter() - started
    if problems:
        raise SystemExit(f"the bench folder does not check: {problems}")
    return elapsed


def in_the_window(folder: Path, work: Path) -> dict[str, float]:
    """Worst heartbeat gap (ms) while the path is chosen and previewed, and from Start to the
    run's first steps; and the seconds each took."""
    from PySide6.QtCore import QSettings, Qt, QTimer
    from PySide6.QtWidgets import QApplication, QComboBox, QLineEdit

    app = QApplication.instance() or QApplication([])
    from kdstudio.gui import MainWindow

    window = MainWindow(db_path=work / "history.db",
                        settings=QSettings(str(work / "settings.ini"),
                                           QSettings.Format.IniFormat))
    window.confirm_close = True
    window.show()
    window.load_preset("synthetic-quick")
    panel = window.setup
    combo = window.findChild(QComboBox, "datasetCombo")
    combo.setCurrentIndex(combo.findData("cifar10"))
    panel.data_params.widgets["train_limit"].setValue(2000)  # the files are read whole
    wait(app, lambda: not panel.data_checker.pending, 60)
    clear_caches()
    beats: list[float] = []
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(HEARTBEAT_MS)
    timer.timeout.connect(lambda: beats.append(time.perf_counter()))
    settle(app, 0.5)
    timer.start()
    settle(app, 0.2)
    chosen = time.perf_counter()
    window.findChild(QLineEdit, "dataPathEdit").setText(str(folder))  # as Browse… does
    wait(app, lambda: not panel.data_checker.pending and not panel.problems
         and panel.data_checker.result is not None, 120)
    shown = time.perf_counter()
    settle(app, 0.2)
    pressed = time.perf_counter()
    if not window.start_run():
        raise SystemExit(f"the window refused to start: {panel.problems}")
    wait(app, lambda: window.controller.flags.run_step >= 3, 300)
    training = time.perf_counter()
    settle(app, 0.2)
    timer.stop()
    window.controller.stop()
    wait(app, lambda: not window.controller.running, 60)
    window.close()
    app.processEvents()
    pairs = list(zip(beats, beats[1:], strict=False))

    def worst(start: float, end: float) -> float:
        return max(((b - a) * 1000 for a, b in pairs if start <= b and a <= end), default=0.0)

    big = [(round(b - pressed, 3), round((b - a) * 1000)) for a, b in pairs
           if (b - a) * 1000 > 40]
    return {"big": big, "choose_ms": worst(chosen, shown), "choose_s": shown - chosen,
            "start_ms": worst(pressed, training), "start_s": training - pressed,
            "summary": panel.data_preview.summary.text()}


def settle(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


def wait(app, condition, timeout_s: float) -> None:
    end = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() > end:
            raise SystemExit("timed out")
        app.processEvents()
        time.sleep(0.002)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=40_000,
                        help="training images (40,000: about 150 MB with the test batch)")
    parser.add_argument("--version", choices=["binary", "python", "both"], default="both")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    versions = ["binary", "python"] if args.version == "both" else [args.version]
    print(f"Machine: {os.cpu_count()} cores, Qt platform {os.environ['QT_QPA_PLATFORM']}, "
          f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="kdstudio-bench-") as temp:
        work = Path(temp)
        os.environ["XDG_CONFIG_HOME"] = str(work / "config")
        for version in versions:
            folder = work / f"cifar-{version}"
            size = write_cifar(folder, version, args.records)
            before = synchronous_check_s(folder)
            found = in_the_window(folder, work / version)
            print(f"\nCIFAR-10 {version} version, {size / 1e6:.0f} MB ({found['summary']})")
            print(f"  data check on the calling thread (as the form did before): "
                  f"{before * 1000:.0f} ms")
            print(f"  path chosen -> preview shown: {found['choose_s']:.2f} s, worst GUI "
                  f"gap {found['choose_ms']:.0f} ms")
            print(f"  Start -> training: {found['start_s']:.2f} s, worst GUI gap "
                  f"{found['start_ms']:.0f} ms")
            print(f"  gaps over 40 ms (s after Start, ms): {found['big']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
