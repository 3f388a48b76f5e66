"""The image-folder dataset: real PNG/JPEG/BMP/WebP files decoded with Pillow, its layouts,
every bad folder named in one line, and a tiny run on it from the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kdstudio.cli import main
from kdstudio.core.config import save_toml, validate
from kdstudio.core.data import dataset_params, get_dataset, prepare_data
from kdstudio.core.data import image_folder as module
from kdstudio.core.store import Store
from tests.helpers import tiny_config

RED, BLUE = (200, 10, 30), (0, 50, 250)


def write_image(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (6, 4),
                seed: int | None = None) -> Path:
    """A solid `colour` image of `size` (width, height); with `seed`, noise around it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.broadcast_to(np.array(colour, np.uint8), (size[1], size[0], 3)).copy()
    if seed is not None:
        noise = np.random.default_rng(seed).integers(-20, 21, pixels.shape)
        pixels = np.clip(pixels.astype(int) + noise, 0, 255).astype(np.uint8)
    options = {"lossless": True} if path.suffix == ".webp" else {}
    Image.fromarray(pixels, "RGB").save(path, **options)
    return path


def two_classes(root: Path, per_class: int = 2, size: tuple[int, int] = (6, 4)) -> Path:
    for i in range(per_class):
        write_image(root / "red" / f"r{i}.png", RED, size, seed=i)
        write_image(root / "blue" / f"b{i}.bmp", BLUE, size, seed=100 + i)
    return root


def load(root: Path | str, **params: object):
    dataset = get_dataset("image-folder")
    return dataset.load(str(root), dataset_params("image-folder", params))


def describe(root: Path, **params: object):
    dataset = get_dataset("image-folder")
    return dataset.describe(str(root), dataset_params("image-folder", params))


def test_every_format_decodes_to_its_colour_in_zero_to_one(tmp_path: Path) -> None:
    for suffix in (".png", ".bmp", ".webp"):
        write_image(tmp_path / "a" / f"x{suffix}", RED)
    write_image(tmp_path / "b" / "x.png", BLUE)
    raw = load(tmp_path, image_size=[4, 6], channels=3)
    assert raw.x_train.shape == (4, 3, 4, 6) and raw.x_train.dtype == np.float32
    assert raw.y_train.tolist() == [0, 0, 0, 1] and raw.y_train.dtype == np.int64
    expected_red = np.array(RED, np.float32) / 255
    for row in raw.x_train[:3]:  # lossless formats: exact values
        assert np.allclose(row.reshape(3, -1).T, expected_red, atol=1e-7)
    assert np.allclose(raw.x_train[3, :, 0, 0], np.array(BLUE) / 255, atol=1e-7)
    assert raw.x_test is None and raw.class_names == ["a", "b"]


def test_jpeg_grey_and_resize(tmp_path: Path) -> None:
    write_image(tmp_path / "cat" / "one.jpg", RED, size=(20, 10))
    write_image(tmp_path / "dog" / "two.JPEG", BLUE, size=(20, 10))
    raw = load(tmp_path, image_size=[5, 7], channels=1)
    assert raw.x_train.shape == (2, 1, 5, 7)
    assert raw.x_train.min() >= 0.0 and raw.x_train.max() <= 1.0
    # Pillow's "L" is 0.299 R + 0.587 G + 0.114 B; JPEG is lossy, so a tolerance
    grey_red = (0.299 * RED[0] + 0.587 * RED[1] + 0.114 * RED[2]) / 255
    grey_blue = (0.299 * BLUE[0] + 0.587 * BLUE[1] + 0.114 * BLUE[2]) / 255
    assert raw.x_train[0].mean() == pytest.approx(grey_red, abs=0.03)
    assert raw.x_train[1].mean() == pytest.approx(grey_blue, abs=0.03)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    Image.fromarray(np.full((4, 6), 40000, np.uint16)).save(tmp_path / "a" / "deep.png")
    write_image(tmp_path / "b" / "x.png", RED)
    for depth in (1, 3):
        raw = load(tmp_path, image_size=[2, 3], channels=depth)
        assert raw.x_train.shape == (2, depth, 2, 3)
        assert np.allclose(raw.x_train[0], 40000 / 65535, atol=1e-5)


def test_labels_follow_sorted_folders_and_files_in_sorted_order(tmp_path: Path) -> None:
    for name, base in (("zebra", 100), ("ant", 0)):
        for stem, value in (("b", base + 10), ("a", base + 20)):
            write_image(tmp_path / name / f"{stem}.png", (value, value, value))
    (tmp_path / "ant" / ".hidden.png").write_bytes(b"not an image")
    (tmp_path / "ant" / "notes.txt").write_text("skipped")
    (tmp_path / ".cache").mkdir()
    raw = load(tmp_path, image_size=[4, 6], channels=1)
    assert raw.class_names == ["ant", "zebra"] and raw.y_train.tolist() == [0, 0, 1, 1]
    # ant (label 0) before zebra; within a class, a.png before b.png
    assert np.allclose(raw.x_train[:, 0, 0, 0] * 255, [20, 10, 120, 110], atol=1e-4)
    info = describe(tmp_path, image_size=[4, 6], channels=1)
    assert (info.input_shape, info.num_classes, info.class_names) == ((1, 4, 6), 2,
                                                                       ["ant", "zebra"])


def test_describe_does_not_decode(tmp_path: Path) -> None:
    two_classes(tmp_path)
    (tmp_path / "red" / "broken.png").write_bytes(b"garbage")
    info = describe(tmp_path)
    assert info.input_shape == (3, 32, 32) and info.class_names == ["blue", "red"]


def test_train_and_test_folders_give_the_test_split(tmp_path: Path) -> None:
    two_classes(tmp_path / "train", per_class=5)
    two_classes(tmp_path / "test", per_class=2)
    raw = load(tmp_path, image_size=[4, 6])
    assert raw.x_train.shape == (10, 3, 4, 6) and raw.x_test.shape == (4, 3, 4, 6)
    assert raw.y_test.tolist() == [0, 0, 1, 1] and raw.class_names == ["blue", "red"]
    data = prepare_data("image-folder", str(tmp_path), {"image_size": [4, 6]}, 0.2, seed=0)
    assert data.test_is_official
    assert data.sizes() == {"train": 8, "val": 2, "test": 4}
    assert data.input_shape == (3, 4, 6) and tuple(data.x_test.shape) == (4, 3, 4, 6)


def problem(root: Path | str, **params: object) -> str:
    with pytest.raises(ValueError) as error:
        load(root, **params)
    return str(error.value)


def test_bad_folders_are_named(tmp_path: Path) -> None:
    assert f"{tmp_path / 'nowhere'} does not exist" in problem(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    write_image(tmp_path / "flat" / "loose.png", RED)
    message = problem(tmp_path / "flat")
    assert str(tmp_path / "flat") in message and "found none" in message
    two_classes(tmp_path / "empty")
    (tmp_path / "empty" / "green").mkdir()
    (tmp_path / "empty" / "green" / "readme.txt").write_text("no images here")
    assert f"class folder {tmp_path / 'empty' / 'green'} holds no images" in problem(
        tmp_path / "empty")
    assert "data.path" in problem("")
    two_classes(tmp_path / "only-train" / "train")
    message = problem(tmp_path / "only-train")
    assert "found only 'train'; train/ and test/ are read as splits only when both" in message


def test_a_file_that_does_not_decode_is_named(tmp_path: Path) -> None:
    two_classes(tmp_path)
    bad = tmp_path / "red" / "z-broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is no jpeg")
    assert problem(tmp_path).startswith(f"{bad} is not a readable image")
    truncated = tmp_path / "blue" / "b9.png"
    write_image(truncated, BLUE, size=(64, 64), seed=3)
    truncated.write_bytes(truncated.read_bytes()[:60])
    bad.unlink()
    assert problem(tmp_path).startswith(f"{truncated} is not a readable image")


def test_train_and_test_with_different_classes(tmp_path: Path) -> None:
    two_classes(tmp_path / "train")
    write_image(tmp_path / "test" / "red" / "r.png", RED)
    write_image(tmp_path / "test" / "green" / "g.png", (0, 255, 0))
    message = problem(tmp_path)
    assert str(tmp_path) in message and "different classes" in message
    assert "only in train/: blue" in message and "only in test/: green" in message


@pytest.mark.parametrize(("params", "text"), [
    ({"image_size": [32]}, "image_size must be [height, width]"),
    ({"image_size": [0, 8]}, "image_size must be [height, width]"),
    ({"image_size": [8, 5000]}, "image_size must be [height, width]"),
    ({"image_size": "32x32"}, "image_size must be [height, width]"),
    ({"image_size": [8, True]}, "image_size must be [height, width]"),
    ({"channels": 2}, "channels must be 1 (grey) or 3 (RGB) (got 2)"),
    ({"channels": "3"}, "channels must be 1 (grey) or 3 (RGB)"),
])
def test_bad_params_name_the_key(tmp_path: Path, params: dict, text: str) -> None:
    two_classes(tmp_path)
    assert text in problem(tmp_path, **params)
    config = tiny_config()
    config.data.dataset, config.data.path = "image-folder", str(tmp_path)
    config.data.params = params
    assert any(p.startswith("data.params: ") and text in p for p in validate(config))


def test_integral_floats_are_accepted_as_sizes(tmp_path: Path) -> None:
    two_classes(tmp_path)
    assert load(tmp_path, image_size=[4.0, 6.0], channels=1.0).x_train.shape == (4, 1, 4, 6)


def test_a_folder_too_big_for_memory_is_refused_up_front(tmp_path: Path, monkeypatch) -> None:
    two_classes(tmp_path)
    monkeypatch.setattr("kdstudio.core.memory.available_memory", lambda: 10_000)
    message = problem(tmp_path, image_size=[32, 32])
    need = module.PEAK_COPIES * 4 * 3 * 32 * 32 * 4
    assert str(tmp_path) in message and f"would need {need / 1000:.1f} kB" in message


def test_validation_reports_a_bad_folder_in_one_line(tmp_path: Path) -> None:
    config = tiny_config()
    config.data.dataset, config.data.path = "image-folder", str(tmp_path / "missing")
    config.data.params = {}
    data_lines = [p for p in validate(config) if p.startswith("data")]
    assert len(data_lines) == 1 and data_lines[0].startswith("data.path: ")
    assert str(tmp_path / "missing") in data_lines[0]


def image_config(tmp_path: Path, root: Path) -> Path:
    config = tiny_config()
    config.data.dataset, config.data.path = "image-folder", str(root)
    config.data.params = {"image_size": [6, 6], "channels": 1}
    config.data.batch_size = 8
    config.teacher.epochs = config.optim.epochs = 1
    path = tmp_path / "images.toml"
    save_toml(config, path)
    return path


def test_a_tiny_run_on_an_image_folder(tmp_path: Path, capsys) -> None:
    root = tmp_path / "images"
    for i in range(14):
        write_image(root / "dark" / f"{i:02d}.png", (30, 30, 30), (6, 6), seed=i)
        write_image(root / "light" / f"{i:02d}.webp", (220, 220, 220), (6, 6), seed=50 + i)
        write_image(root / "mid" / f"{i:02d}.bmp", (120, 120, 120), (6, 6), seed=90 + i)
    db = tmp_path / "x.db"
    assert main(["run", str(image_config(tmp_path, root)), "--db", str(db), "--quiet"]) == 0
    with Store(db) as store:
        (row,) = store.list_runs()
        assert row["status"] == "completed"
        assert 0.0 <= row["student_test_acc"] <= 1.0
        assert row["config"]["data"]["params"]["image_size"] == [6, 6]
    assert "completed" in capsys.readouterr().out


def test_cli_on_a_bad_folder_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    root = tmp_path / "images"
    write_image(root / "a" / "x.png", RED)
    (root / "b").mkdir()
    db = tmp_path / "x.db"
    assert main(["run", str(image_config(tmp_path, root)), "--db", str(db)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines == [f"kdstudio: data.path: class folder {root / 'b'} holds no images "
                     f"(.png, .jpg, .jpeg, .bmp, .webp)"]
    assert "Traceback" not in captured.err + captured.out


def test_cli_on_an_image_that_does_not_decode_exits_2(tmp_path: Path, capsys) -> None:
    root = two_classes(tmp_path / "images", size=(6, 6))
    bad = root / "red" / "bad.webp"
    bad.write_bytes(b"RIFF....WEBPjunk")
    assert main(["run", str(image_config(tmp_path, root)), "--db", str(tmp_path / "x.db")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"kdstudio: data: {bad} is not a readable")
