"""Engine overhead on a CIFAR-sized ResNet pair, on the CPU or CUDA: the engine against a
bare KD loop (resnet32x4 -> resnet8x4, 3x32x32 inputs), per batch size, precision and
eager or compiled forward passes. Run through `bench/overhead.py --suite resnet`.

The data is seeded synthetic CIFAR-sized images (one smooth random template per class plus
noise), written once as an .npz file and read by the engine's `npz` dataset. The teacher is
trained once by the engine (one float32 epoch) and loaded, frozen, by every later run.

Both loops do the same computation: the same initial weights, batch order, optimiser
(fused SGD, Nesterov, cosine), Hinton KD, teacher-output cache off; `bf16` is the engine's
`autocast = true` (bfloat16 on a CUDA GPU that has it; on the CPU the engine trains in
float32 and so does the bare loop) with both models in channels_last memory format (the
engine has no option for it, so the models are registered here in that format, and the
engine and the bare loop build the same ones); `compiled` is the engine's `compile = true`
and, in the bare loop, the engine's own `compile_model` on both models.

On CUDA an interleaved step-by-step measurement would time the other loop's queued work,
so whole runs alternate (engine, bare, bare, engine, ...). Every clock is read after
`torch.cuda.synchronize()`; batches go to the GPU from pinned memory without blocking, as
in the engine. The figure is the student phase's epochs after the first (the first holds
compilation and warm-up), or the whole phase for a one-epoch run.
"""

from __future__ import annotations

import functools
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import table, timed_kd_recipe  # noqa: E402

from kdstudio.core.checkpoint import load_weights  # noqa: E402
from kdstudio.core.config import RunConfig  # noqa: E402
from kdstudio.core.data import Splits, prepare_data  # noqa: E402
from kdstudio.core.distill.precision import Precision, resolve_precision, to_device  # noqa: E402
from kdstudio.core.engine import run  # noqa: E402
from kdstudio.core.engine.preparation import compile_model  # noqa: E402
from kdstudio.core.events import Epoch, Event, PhaseFinished, PhaseStarted  # noqa: E402
from kdstudio.core.models import MODELS, FeatureModel, create_model, register_model  # noqa: E402
from kdstudio.core.store import Store  # noqa: E402

# (arch, params) of the teacher and the student
Models = tuple[tuple[str, dict[str, Any]], tuple[str, dict[str, Any]]]
RESNETS: Models = (("resnet32x4", {}), ("resnet8x4", {}))
CHANNELS_LAST = "-channels-last"
IMAGE_SHAPE = (3, 32, 32)
CLASSES = 10


def register_channels_last(arch: str) -> str:
    """Register (once) and return `<arch>-channels-last`: the same model, parameters and
    initial weights for a seed, with its weights in channels_last memory format."""
    name = arch + CHANNELS_LAST
    if name not in MODELS:
        factory = MODELS.get(arch)

        @functools.wraps(factory)  # the same signature: the same parameters and defaults
        def build(input_shape: tuple[int, ...], num_classes: int,
                  **params: Any) -> FeatureModel:
            model = factory(input_shape, num_classes, **params)
            return model.to(memory_format=torch.channels_last)

        register_model(name)(build)
    return name


def write_images(path: Path, samples: int, seed: int = 0) -> Path:
    """Seeded CIFAR-sized images: per class one smooth template (8x8 noise upsampled to
    32x32, per channel) plus unit noise; `samples` training and samples // 5 test images."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, size=(CLASSES, 3, 8, 8))
    templates = np.kron(coarse, np.ones((1, 1, 4, 4)))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, CLASSES, size=n)
        x = templates[y] + rng.normal(0.0, 1.0, size=(n, *IMAGE_SHAPE))
        return x.astype(np.float32), y.astype(np.int64)

    x, y = draw(samples)
    x_test, y_test = draw(max(samples // 5, CLASSES))
    np.savez(path, x=x, y=y, x_test=x_test, y_test=y_test)
    return path


@dataclass(frozen=True)
class Setting:
    """One row: batch size, precision (`float32` or `bf16`) and eager or compiled."""

    batch: int
    precision: str
    compiled: bool

    @property
    def channels_last(self) -> bool:
        return self.precision == "bf16"

    def label(self) -> str:
        return (f"batch {self.batch}, {self.precision}"
                f"{' + channels_last' if self.channels_last else ''}, "
                f"{'compiled' if self.compiled else 'eager'}")


def resnet_config(data_path: Path, device: str, epochs: int, models: Models = RESNETS
                  ) -> RunConfig:
    """resnet32x4 -> resnet8x4 (or `models`) on the synthetic images, the shared timed KD
    recipe."""
    config = RunConfig(name="overhead-resnet", seed=0, device=device)
    config.data.dataset, config.data.path = "npz", str(data_path)
    (config.teacher.arch, config.teacher.params), (config.student.arch,
                                                   config.student.params) = models
    return timed_kd_recipe(config, epochs)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class DeviceKDLoop:
    """The hand-written KD loop on any device: the engine's batch order, initial weights,
    fused SGD with Nesterov momentum, cosine learning rate, Hinton KD with the losses in
    float32, autocast through the engine's `Precision`, validation after each epoch."""

    def __init__(self, config: RunConfig, data: Splits, teacher: torch.nn.Module,
                 device: torch.device, precision: Precision, compiled: bool) -> None:
        self.data, self.teacher, self.device, self.precision = data, teacher, device, precision
        torch.manual_seed(config.seed + 1)
        self.student = create_model(config.student.arch, data.input_shape, data.num_classes,
                                    **config.student.params).to(device)
        if compiled:
            compile_model("student", self.student)
        o, d = config.optim, config.distill
        self.optimizer = torch.optim.SGD(
            self.student.parameters(), lr=o.lr, momentum=o.momentum, nesterov=True,
            weight_decay=o.weight_decay, fused=True)
        torch.manual_seed(config.seed + 2)
        self.order = torch.Generator().manual_seed(config.seed + 3)
        self.lr, self.epochs = o.lr, o.epochs
        self.ce_weight, self.kd_weight, self.t = d.ce_weight, d.kd_weight, d.temperature
        self.n, self.batch = len(data.y_train), config.data.batch_size
        self.steps_per_epoch = math.ceil(self.n / self.batch)
        self.total_steps = o.epochs * self.steps_per_epoch
        self.pinned = device.type == "cuda"
        self.accuracy = 0.0
        self.epoch_seconds: list[float] = []

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """As the engine copies: through pinned memory, without blocking (a pinned tensor
        is not copied again); on the CPU the tensor itself."""
        return to_device(tensor, self.device) if self.pinned else tensor

    def gather(self, values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """`values[rows]`, gathered into pinned memory for a CUDA copy."""
        if not self.pinned:
            return values[rows]
        out = torch.empty((len(rows), *values.shape[1:]), dtype=values.dtype, pin_memory=True)
        return torch.index_select(values, 0, rows, out=out)

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        t = self.t
        with self.precision.autocast():  # the losses as the engine's: CE under autocast,
            with torch.no_grad():  # KD in float32 on upcast logits
                teacher_logits = self.teacher(x)
            logits = self.student(x)
            ce = F.cross_entropy(logits, y)
        s, te = logits.float(), teacher_logits.float()
        kd = F.kl_div(F.log_softmax(s / t, 1), F.log_softmax(te / t, 1),
                      reduction="batchmean", log_target=True) * t * t
        loss = self.ce_weight * ce + self.kd_weight * kd
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.step(loss, self.optimizer)

    @torch.no_grad()
    def validate(self) -> None:
        self.student.eval()
        val = torch.cat([self.student(self.to_device(chunk)).float()
                         for chunk in self.data.x_val.split(1024)]).cpu()
        self.accuracy = int((val.argmax(1) == self.data.y_val).sum()) / len(self.data.y_val)
        self.student.train()

    def run(self) -> None:
        """All epochs; each epoch's seconds (steps and validation) after a device sync."""
        self.student.train()
        count = 0
        synchronize(self.device)
        for _ in range(self.epochs):
            started = time.perf_counter()
            for idx in torch.randperm(self.n, generator=self.order).split(self.batch):
                x = self.to_device(self.gather(self.data.x_train, idx))
                y = self.to_device(self.gather(self.data.y_train, idx))
                lr = self.lr * 0.5 * (1 + math.cos(math.pi * count / self.total_steps))
                self.step(x, y, lr)
                count += 1
            self.validate()
            synchronize(self.device)
            self.epoch_seconds.append(time.perf_counter() - started)


class EpochClock:
    """Engine events -> the student phase's epoch seconds, each clock read after a sync."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.last = 0.0
        self.epoch_seconds: list[float] = []
        self.logs: list[str] = []

    def __call__(self, event: Event) -> None:
        if getattr(event, "phase", None) != "student":
            return
        if isinstance(event, (PhaseStarted, Epoch, PhaseFinished)):
            synchronize(self.device)
            now = time.perf_counter()
            if isinstance(event, Epoch):
                self.epoch_seconds.append(now - self.last)
            self.last = now


def steady_seconds(epoch_seconds: list[float]) -> float:
    """Seconds of the epochs after the first (all of them for a one-epoch run)."""
    return sum(epoch_seconds[1:]) if len(epoch_seconds) > 1 else sum(epoch_seconds)


class ResNetBench:
    """One device: the synthetic images, a trained frozen teacher, then rows of settings."""

    def __init__(self, device: str, train_size: int, epochs: int, folder: Path,
                 models: Models = RESNETS) -> None:
        self.device = torch.device(device)
        self.epochs, self.models = epochs, models
        data_path = write_images(folder / "cifar-sized.npz", train_size)
        self.store = Store(folder / "resnet.db")
        config = resnet_config(data_path, device, epochs, models)
        config.data.batch_size = 256
        config.optim.epochs = 1  # this run is for its teacher; its student is not timed
        first = run(config, self.store)  # trains the teacher once (one float32 epoch)
        assert first.status == "completed", first.error
        self.checkpoint = self.store.artifacts(first.run_id, "teacher")[0]["path"]
        self.data_path = data_path
        c = config
        self.data = prepare_data(c.data.dataset, c.data.path, c.data.params,
                                 c.data.val_fraction, c.seed, c.data.test_fraction)
        self.samples_per_epoch = len(self.data.y_train)
        self.last_run_id = ""  # of the latest engine run
        self.last_bare: DeviceKDLoop | None = None  # the latest bare loop

    def config(self, setting: Setting) -> RunConfig:
        config = resnet_config(self.data_path, str(self.device), self.epochs, self.models)
        if setting.channels_last:
            config.teacher.arch = register_channels_last(config.teacher.arch)
            config.student.arch = register_channels_last(config.student.arch)
        config.teacher.checkpoint, config.teacher.epochs = self.checkpoint, 0
        config.data.batch_size = setting.batch
        config.autocast = setting.precision == "bf16"
        config.compile = setting.compiled
        return config

    def engine_run(self, config: RunConfig) -> tuple[list[float], float]:
        clock = EpochClock(self.device)
        result = run(config, self.store, clock)
        assert result.status == "completed", result.error
        self.last_run_id = result.run_id
        return clock.epoch_seconds, result.summary["student_last_val_acc"]

    def bare_run(self, config: RunConfig) -> tuple[list[float], float]:
        teacher = create_model(config.teacher.arch, self.data.input_shape,
                               self.data.num_classes, **config.teacher.params)
        load_weights(teacher, self.checkpoint)
        teacher.to(self.device).eval().requires_grad_(False)
        if config.compile:
            compile_model("teacher", teacher)
        precision = resolve_precision(config.autocast, self.device)
        loop = DeviceKDLoop(config, self.data, teacher, self.device, precision,
                            config.compile)
        loop.run()
        self.last_bare = loop
        return loop.epoch_seconds, loop.accuracy

    def row(self, setting: Setting, pairs: int) -> dict[str, Any]:
        """`pairs` alternating pairs of whole runs (engine first in even pairs)."""
        config = self.config(setting)
        precision = resolve_precision(config.autocast, self.device)
        engine_s: list[float] = []
        bare_s: list[float] = []
        accuracy: dict[str, float] = {}
        for pair in range(pairs):
            order = ("engine", "bare") if pair % 2 == 0 else ("bare", "engine")
            for kind in order:
                if kind == "engine":
                    seconds, accuracy["engine"] = self.engine_run(config)
                    engine_s.append(steady_seconds(seconds))
                else:
                    seconds, accuracy["bare"] = self.bare_run(config)
                    bare_s.append(steady_seconds(seconds))
            print(f"{setting.label()}: pair {pair + 1}: engine {engine_s[-1]:.3f} s, "
                  f"bare {bare_s[-1]:.3f} s", flush=True)
        timed_epochs = max(self.epochs - 1, 1)
        samples = self.samples_per_epoch * timed_epochs
        ratios = [b / e for b, e in zip(bare_s, engine_s, strict=True)]
        return {"setting": setting, "precision": precision.name,
                "engine_rate": samples / statistics.median(engine_s),
                "bare_rate": samples / statistics.median(bare_s),
                "ratios": ratios, "ratio": statistics.median(ratios),
                "engine_acc": accuracy["engine"], "bare_acc": accuracy["bare"]}


def measure(device: str, batches: list[int], precisions: list[str], compiled: list[bool],
            train_size: int, epochs: int, pairs: int, folder: Path,
            models: Models = RESNETS) -> list[dict[str, Any]]:
    """Every setting's row, settings in the order batch, precision, eager/compiled."""
    bench = ResNetBench(device, train_size, epochs, folder, models)
    try:
        return [bench.row(Setting(batch, precision, flag), pairs)
                for batch in batches for precision in precisions for flag in compiled]
    finally:
        bench.store.close()


def speedups(rows: list[dict[str, Any]]) -> list[list[Any]]:
    """bf16 / float32 and compiled / eager, engine samples/s, where both rows were measured."""
    by_key = {(r["setting"].batch, r["setting"].precision, r["setting"].compiled): r
              for r in rows}
    out = []
    for (batch, precision, flag), r in by_key.items():
        if precision == "bf16" and (batch, "float32", flag) in by_key:
            base = by_key[(batch, "float32", flag)]
            out.append([batch, f"bf16 / float32 ({'compiled' if flag else 'eager'})",
                        f"**{r['engine_rate'] / base['engine_rate']:.2f}x**",
                        f"{r['bare_rate'] / base['bare_rate']:.2f}x"])
        if flag and (batch, precision, False) in by_key:
            base = by_key[(batch, precision, False)]
            out.append([batch, f"compiled / eager ({precision})",
                        f"**{r['engine_rate'] / base['engine_rate']:.2f}x**",
                        f"{r['bare_rate'] / base['bare_rate']:.2f}x"])
    return out


def result_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [[r["setting"].batch, r["setting"].precision + (" + channels_last"
                                                           if r["setting"].channels_last
                                                           else ""),
             "compiled" if r["setting"].compiled else "eager", r["precision"],
             len(r["ratios"]), f"{r['bare_rate']:,.0f}", f"{r['engine_rate']:,.0f}",
             f"**{r['ratio']:.3f}** ({min(r['ratios']):.3f} - {max(r['ratios']):.3f})",
             f"{r['bare_acc']:.2%} / {r['engine_acc']:.2%}"] for r in rows]


def report(rows: list[dict[str, Any]], device: str, train_size: int, epochs: int) -> str:
    """The Markdown body: the rows, the speed-ups, what was measured."""
    name = (torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda")
            else "CPU")
    parts = [f"Device: **{name}** (`--device {device}`), torch {torch.__version__}",
             table(["batch", "precision asked", "forward", "precision the engine used",
                    "pairs", "bare loop samples/s", "engine samples/s",
                    "ratio engine / bare: median (range)", "val acc bare / engine"],
                   result_rows(rows))]
    ups = speedups(rows)
    if ups:
        parts += ["Speed-ups (median samples/s of the same loop, one setting against another)",
                  table(["batch", "speed-up", "engine", "bare loop"], ups)]
    parts.append(
        f"Student phase of Hinton KD, {RESNETS[0][0]} -> {RESNETS[1][0]}, synthetic "
        f"CIFAR-sized images (3x32x32, 10 classes, {train_size:,} images before the "
        f"validation split), {epochs} student epochs per run, teacher-output cache off; "
        "samples/s over the epochs after the first (compilation and warm-up), clocks read "
        "after a device sync; whole runs alternate (engine, bare, bare, engine, ...). "
        "Ratio = engine samples/s / bare loop samples/s (goal >= 0.97 at batch 256 float32 "
        "on CUDA). bf16 = the engine's `autocast = true` (bfloat16 on a GPU that has it; on "
        "the CPU the engine trains in float32, and so does the bare loop) plus both models "
        "in channels_last. Equal validation accuracy shows both loops did the same "
        "computation.")
    return "\n\n".join(parts)
