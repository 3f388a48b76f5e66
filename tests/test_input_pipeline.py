"""The input pipeline: memory and stream loaders give the same runs, auto picks by the memory
budget, crop-flip augmentation, cached normalisation statistics, and an image folder read
from its files (never held decoded) through evaluation, the teacher cache and a resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kdstudio.core.config import ConfigError, RunConfig, validate
from kdstudio.core.data import image_folder, prepare_data
from kdstudio.core.data.augment import PADDING, CropFlip
from kdstudio.core.data.examples import FileExamples
from kdstudio.core.engine import prepare, resume, run
from kdstudio.core.engine.streaming import AugmentedBatches, StreamBatches, default_batches
from kdstudio.core.events import Log
from kdstudio.core.store import Store
from tests.helpers import tiny_config

WALL_TIME_METRICS = {"samples_per_s"}


def write_folder(root: Path, per_class: int = 12, side: int = 8) -> Path:
    """Three classes of noisy RGB PNGs of `side` x `side` pixels, each class its own shade."""
    rng = np.random.default_rng(0)
    for label, shade in enumerate((40, 120, 200)):
        folder = root / f"class{label}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(shade + rng.integers(-40, 41, (side, side, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8), "RGB").save(folder / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("pipeline") / "images")


def image_config(root: Path, loader: str = "memory", workers: int = 0, **data: object
                 ) -> RunConfig:
    config = tiny_config()
    config.data.dataset, config.data.path = "image-folder", str(root)
    config.data.params = {"image_size": [8, 8], "channels": 3}
    config.data.batch_size = 8
    config.data.loader, config.data.workers = loader, workers
    config.teacher.arch, config.teacher.params = "cnn", {"channels": [4]}
    for key, value in data.items():
        setattr(config.data, key, value)
    return config


def synthetic_config(loader: str = "memory", workers: int = 0) -> RunConfig:
    config = tiny_config()
    config.data.loader, config.data.workers = loader, workers
    return config


def run_logged(config: RunConfig, db: Path, **kwargs: object):
    logs: list[str] = []
    store = Store(db)
    result = run(config, store, lambda e: logs.append(e.message) if isinstance(e, Log) else 0,
                 **kwargs)
    rows = sorted((r["phase"], r["step"], r["epoch"], r["name"], r["value"])
                  for r in store.metrics(result.run_id) if r["name"] not in WALL_TIME_METRICS)
    store.close()
    return result, rows, logs


def test_arrays_give_identical_metrics_in_memory_and_through_a_stream(tmp_path: Path) -> None:
    memory, memory_rows, memory_logs = run_logged(synthetic_config("memory"), tmp_path / "m.db")
    stream, stream_rows, stream_logs = run_logged(synthetic_config("stream", 1),
                                                  tmp_path / "s.db")
    assert memory.status == stream.status == "completed", stream.error
    assert len(memory_rows) > 50 and memory_rows == stream_rows
    assert memory.summary["student_test_acc"] == stream.summary["student_test_acc"]
    assert "Loader: memory (data.loader = memory; the decoded data is 5.8 kB)" in memory_logs
    assert ("Loader: stream, 1 worker process (data.loader = stream; the decoded data is "
            "5.8 kB)") in stream_logs


@pytest.mark.parametrize(("workers", "data"), [
    (0, {}),
    (2, {}),
    (0, {"label_count": 9, "transfer": "all"}),  # few labels, KD terms on all inputs
], ids=["workers0", "workers2", "few-labels-transfer-all"])
def test_an_image_folder_read_from_its_files_gives_the_metrics_of_memory(
        tmp_path: Path, folder: Path, workers: int, data: dict, monkeypatch) -> None:
    # each run computes its own statistics (decoded in memory, or streamed from the files)
    monkeypatch.setenv("KDSTUDIO_CACHE", str(tmp_path / "memory-cache"))
    memory, memory_rows, _ = run_logged(image_config(folder, "memory", **data),
                                        tmp_path / "m.db")
    monkeypatch.setenv("KDSTUDIO_CACHE", str(tmp_path / "stream-cache"))
    stream, stream_rows, logs = run_logged(image_config(folder, "stream", workers, **data),
                                           tmp_path / "s.db")
    assert memory.status == stream.status == "completed", stream.error
    assert len(memory_rows) > 50 and memory_rows == stream_rows
    for key in ("teacher_test_acc", "baseline_test_acc", "student_test_acc"):
        assert memory.summary[key] == stream.summary[key]
    cache_lines = [line for line in logs if line.startswith("Teacher-output cache on")]
    assert len(cache_lines) == 1  # the teacher cache, built from the streamed files


def test_a_stream_over_an_image_folder_holds_no_decoded_folder(tmp_path: Path, folder: Path,
                                                             monkeypatch) -> None:
    args = ("image-folder", str(folder), {"image_size": [8, 8], "channels": 3}, 0.25, 3)
    monkeypatch.setenv("KDSTUDIO_CACHE", str(tmp_path / "memory-cache"))
    memory = prepare_data(*args, loader="memory")
    monkeypatch.setenv("KDSTUDIO_CACHE", str(tmp_path / "stream-cache"))
    stream = prepare_data(*args, loader="stream", workers=1)  # statistics streamed
    assert stream.x_train is None and stream.x_val is None and stream.x_test is None
    assert isinstance(stream.inputs("train"), FileExamples)
    assert stream.sizes() == memory.sizes() == {"train": 22, "val": 7, "test": 7}
    assert stream.mean == memory.mean and stream.std == memory.std
    for split in ("train", "val", "test"):
        assert torch.equal(stream.inputs(split).gather(torch.arange(5)),
                           memory.inputs(split).tensor[:5])
        assert torch.equal(getattr(stream, f"y_{split}"), getattr(memory, f"y_{split}"))


def test_auto_picks_memory_under_the_budget_and_stream_over_it(tmp_path: Path, folder: Path,
                                                               monkeypatch) -> None:
    small, _, small_logs = run_logged(image_config(folder, "auto"), tmp_path / "a.db")
    assert small.status == "completed"
    assert ("Loader: memory (data.loader = auto: the decoded data, 27.6 kB, fits the memory "
            "budget of 2.0 GB)") in small_logs
    monkeypatch.setenv("KDSTUDIO_MEMORY_BUDGET_MB", "0.01")
    big, _, big_logs = run_logged(image_config(folder, "auto"), tmp_path / "b.db")
    assert big.status == "completed"
    assert ("Loader: stream, 0 worker processes (data.loader = auto: the decoded data, "
            "27.6 kB, is over the memory budget of 10.0 kB ($KDSTUDIO_MEMORY_BUDGET_MB sets "
            "it))") in big_logs
    assert prepare(image_config(folder, "auto")).data.x_train is None
    monkeypatch.setenv("KDSTUDIO_MEMORY_BUDGET_MB", "lots")
    with pytest.raises(ConfigError, match="KDSTUDIO_MEMORY_BUDGET_MB must be a number"):
        prepare(image_config(folder, "auto"))


def test_auto_streams_when_augmenting(folder: Path) -> None:
    data = prepare(image_config(folder, "auto", augment="crop-flip")).data
    assert data.loader == "stream"
    assert data.loader_reason == ("Loader: stream, 0 worker processes (data.loader = auto and "
                                  "data.augment = crop-flip)")


def crop_kind(out: torch.Tensor, image: torch.Tensor, fill: torch.Tensor) -> str | None:
    """"plain" or "flipped" when `out` is a crop of `image` padded with `fill` (flipped
    left-right or not), else None."""
    channels, height, width = image.shape
    padded = fill.view(-1, 1, 1).expand(channels, height + 2 * PADDING,
                                        width + 2 * PADDING).clone()
    padded[:, PADDING:PADDING + height, PADDING:PADDING + width] = image
    for top in range(2 * PADDING + 1):
        for left in range(2 * PADDING + 1):
            crop = padded[:, top:top + height, left:left + width]
            if torch.equal(out, crop):
                return "plain"
            if torch.equal(out, crop.flip(2)):
                return "flipped"
    return None


def test_crop_flip_crops_flips_and_is_reproducible() -> None:
    x = torch.randn(32, 3, 6, 7, generator=torch.Generator().manual_seed(0))
    augment = CropFlip(5, [0.5, 0.4, 0.3], [0.2, 0.25, 0.5])
    out = augment(x, epoch=2, step=3)
    assert out.shape == x.shape and out.dtype == x.dtype
    fill = torch.tensor([-2.5, -1.6, -0.6])  # a black pixel, normalised
    kinds = [crop_kind(out[i], x[i], fill) for i in range(len(x))]
    assert None not in kinds and 8 < kinds.count("flipped") < 24
    assert not torch.equal(out, x)
    again = CropFlip(5, [0.5, 0.4, 0.3], [0.2, 0.25, 0.5])(x, epoch=2, step=3)
    assert torch.equal(out, again)
    assert not torch.equal(out, augment(x, epoch=2, step=4))
    assert not torch.equal(out, CropFlip(6, [0.5, 0.4, 0.3], [0.2, 0.25, 0.5])(x, 2, 3))


def batches_of(config: RunConfig, phase: str = "student") -> tuple[list, object]:
    prepared = prepare(config)
    source = default_batches(prepared, phase, prepared.labelled)
    return [batch for epoch in range(2) for batch in source.epoch(epoch)], source


def test_crop_flip_changes_training_inputs_alike_in_memory_and_stream(folder: Path) -> None:
    plain, _ = batches_of(image_config(folder, "memory"))
    memory, memory_source = batches_of(image_config(folder, "memory", augment="crop-flip"))
    again, _ = batches_of(image_config(folder, "memory", augment="crop-flip"))
    stream, stream_source = batches_of(image_config(folder, "stream", augment="crop-flip"))
    assert isinstance(memory_source, AugmentedBatches)
    assert isinstance(stream_source, StreamBatches)
    assert len(plain) == len(memory) == len(stream) == 6
    for raw, augmented, repeat, streamed in zip(plain, memory, again, stream, strict=True):
        assert augmented.x.shape == raw.x.shape
        assert not torch.equal(augmented.x, raw.x)
        assert torch.equal(augmented.positions, raw.positions)  # the same examples
        assert torch.equal(augmented.y, raw.y)
        assert torch.equal(augmented.x, repeat.x) and torch.equal(augmented.x, streamed.x)
    # a new crop each epoch: the same examples augmented differently
    assert not torch.equal(memory[0].x, memory[3].x)


def test_crop_flip_turns_the_teacher_cache_off_and_says_why(tmp_path: Path,
                                                           folder: Path) -> None:
    result, _, logs = run_logged(image_config(folder, "memory", augment="crop-flip"),
                                 tmp_path / "h.db")
    assert result.status == "completed", result.error
    cache_lines = [line for line in logs if line.startswith("Teacher-output cache")]
    assert cache_lines == ["Teacher-output cache off: data.augment = crop-flip gives new "
                           "inputs every epoch, so the teacher runs on every batch"]


def test_crop_flip_is_refused_for_flat_data() -> None:
    config = tiny_config()
    config.data.augment = "crop-flip"
    problems = [p for p in validate(config) if p.startswith("data")]
    assert problems == ["data.augment: crop-flip needs images shaped (C, H, W); this dataset "
                        "gives inputs shaped (6,) (use data.augment = none)"]
    with pytest.raises(ConfigError):
        prepare(config)


def test_statistics_are_computed_once_and_cached(tmp_path: Path, monkeypatch) -> None:
    root = write_folder(tmp_path / "images", per_class=4)
    monkeypatch.setenv("KDSTUDIO_CACHE", str(tmp_path / "cache"))
    decoded: list[Path] = []
    real = image_folder.decode

    def counting(file, mode, size):
        decoded.append(file)
        return real(file, mode, size)

    monkeypatch.setattr(image_folder, "decode", counting)
    args = ("image-folder", str(root), {"image_size": [8, 8], "channels": 3}, 0.25, 3)
    first = prepare_data(*args, loader="stream")
    assert len(decoded) == first.sizes()["train"] == 8  # the streamed statistics pass
    assert len(list((tmp_path / "cache" / "stats").glob("*.json"))) == 1
    decoded.clear()
    second = prepare_data(*args, loader="stream")
    assert decoded == [] and second.mean == first.mean and second.std == first.std
    memory = prepare_data(*args, loader="memory")  # decodes the folder, not the statistics
    assert memory.mean == first.mean and len(decoded) == 12
    changed = root / "class0" / "00.png"
    Image.new("RGB", (8, 8), (255, 255, 255)).save(changed)
    decoded.clear()
    third = prepare_data(*args, loader="stream")
    assert len(decoded) == 8 and third.mean != first.mean


def test_a_file_that_does_not_decode_is_named_through_a_worker(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "images", per_class=4)
    for bad in (root / "class1").iterdir():  # some of them in the training split
        bad.write_bytes(b"not a png")
    with pytest.raises(ConfigError) as error:  # the statistics pass finds it
        prepare(image_config(root, "stream", workers=1))
    (line,) = error.value.problems
    assert line.startswith(f"data: {root / 'class1'}") and "is not a readable image" in line
    files = sorted(str(file) for file in root.glob("*/*.png"))
    examples = FileExamples(files, image_folder.Decoder("RGB", (3, 8, 8)), (3, 8, 8),
                            workers=1)
    source = StreamBatches(examples, torch.zeros(len(files), dtype=torch.int64),
                           torch.arange(len(files)), 4, 0, workers=1)
    for batches in (lambda: examples.chunks(4), lambda: source.epoch(0)):
        with pytest.raises(ValueError) as failure:
            list(batches())
        message = str(failure.value)
        assert message.startswith(str(root / "class1")) and "is not a readable image" in message
        assert "Traceback" not in message and "worker" not in message


def test_memory_loader_for_a_folder_too_big_is_a_validation_problem(folder: Path,
                                                                    monkeypatch) -> None:
    monkeypatch.setattr("kdstudio.core.memory.available_memory", lambda: 10_000)
    problems = [p for p in validate(image_config(folder, "memory")) if p.startswith("data")]
    assert len(problems) == 1 and problems[0].startswith(f"data.loader: image folder {folder}")
    assert "data.loader = stream reads them from the files instead" in problems[0]
    assert [p for p in validate(image_config(folder, "stream")) if p.startswith("data")] == []


def test_a_stopped_stream_run_resumes_to_the_metrics_of_an_uninterrupted_one(
        tmp_path: Path, folder: Path) -> None:
    config = image_config(folder, "stream", workers=1, augment="crop-flip")
    reference, reference_rows, _ = run_logged(config, tmp_path / "reference.db")
    assert reference.status == "completed", reference.error
    with Store(tmp_path / "reference.db") as store:
        plan = {phase["name"]: phase for phase in store.get_run(reference.run_id)["plan"]}
    stop_at = plan["teacher"]["steps"] + plan["baseline"]["steps"] + 4  # mid student epoch
    calls = [0]

    def should_stop() -> bool:
        calls[0] += 1
        return calls[0] > stop_at

    stopped, _, _ = run_logged(config, tmp_path / "h.db", should_stop=should_stop)
    assert stopped.status == "stopped"
    with Store(tmp_path / "h.db") as store:
        resumed = resume(stopped.run_id, store)
        rows = sorted((r["phase"], r["step"], r["epoch"], r["name"], r["value"])
                      for r in store.metrics(resumed.run_id)
                      if r["name"] not in WALL_TIME_METRICS)
    assert resumed.status == "completed", resumed.error
    assert rows == reference_rows
    assert resumed.summary["student_test_acc"] == reference.summary["student_test_acc"]
