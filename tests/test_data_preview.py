"""The data preview: counts per split as the run splits them, samples, first rows, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kdstudio.core.data import DataFileError, get_dataset, prepare_data
from kdstudio.core.data import image_folder as image_module
from kdstudio.core.data.preview import preview_dataset, sample_indices
from tests.test_cifar import write_binary, write_python
from tests.test_image_folder import BLUE, RED, write_image


def run_counts(name: str, path: Path, params: dict, val: float, test: float, seed: int
               ) -> dict[str, list[int]]:
    """Examples per class in each split of the data a run prepares."""
    splits = prepare_data(name, str(path), params, val, seed, test)
    return {split: np.bincount(getattr(splits, f"y_{split}").numpy(),
                               minlength=splits.num_classes).tolist()
            for split in ("train", "val", "test")}


def image_folder(root: Path, counts: dict[str, int]) -> Path:
    colours = {"blue": BLUE, "green": (0, 200, 0), "red": RED}
    for name, count in counts.items():
        for i in range(count):
            write_image(root / name / f"{i:02d}.png", colours[name], (5, 3), seed=i)
    return root


def test_image_folder_counts_per_split_match_the_run_and_only_samples_decode(
        tmp_path: Path, monkeypatch) -> None:
    root = image_folder(tmp_path / "imgs", {"blue": 7, "green": 4, "red": 9})
    params = {"image_size": [3, 5], "channels": 3}
    decoded: list[Path] = []
    real_decode = image_module.decode
    monkeypatch.setattr("kdstudio.core.data.preview.decode",
                        lambda file, *a: decoded.append(file) or real_decode(file, *a))
    preview = preview_dataset("image-folder", str(root), params, 0.25, 0.2, 5)
    assert preview.input_shape == (3, 3, 5)
    assert preview.class_names == ["blue", "green", "red"]
    assert preview.counts == run_counts("image-folder", root, params, 0.25, 0.2, 5)
    assert preview.totals() == {"train": 12, "val": 4, "test": 4}
    assert not preview.test_is_official
    assert len(decoded) == len(preview.images) == 12 < 20  # not every file
    # each class in turn, its first files first
    assert [label for _image, label in preview.images[:6]] == [0, 1, 2, 0, 1, 2]
    assert decoded[:3] == [root / "blue" / "00.png", root / "green" / "00.png",
                           root / "red" / "00.png"]
    image, label = preview.images[2]
    assert image.dtype == np.uint8 and image.shape == (3, 5, 3)
    assert abs(int(image[..., 0].mean()) - RED[0]) <= 20 and label == 2
    assert preview.summary() == ("3 × 3 × 5 images, 3 classes; train 12 · val 4 · test 4 "
                                 "(test carved from the data)")


def test_image_folder_with_train_and_test_folders_and_grey(tmp_path: Path) -> None:
    image_folder(tmp_path / "d" / "train", {"blue": 5, "red": 3})
    image_folder(tmp_path / "d" / "test", {"blue": 2, "red": 1})
    params = {"image_size": [4, 4], "channels": 1}
    preview = preview_dataset("image-folder", str(tmp_path / "d"), params, 0.25, 0.2, 0)
    assert preview.test_is_official
    assert preview.counts["test"] == [2, 1]
    assert preview.counts == run_counts("image-folder", tmp_path / "d", params, 0.25, 0.2, 0)
    assert preview.images[0][0].shape == (4, 4)  # grey: (H, W)
    assert preview.summary().endswith("train 6 · val 2 · test 3")


def test_csv_preview_gives_counts_and_the_first_rows(tmp_path: Path) -> None:
    lines = ["a,b,kind"] + [f"{i},{i * 0.5},{['cat', 'dog', 'eel'][i % 3]}" for i in range(30)]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    params = {"label_column": "kind"}
    preview = preview_dataset("csv", str(path), params, 0.2, 0.1, 1)
    assert preview.input_shape == (2,) and preview.class_names == ["cat", "dog", "eel"]
    assert preview.counts == run_counts("csv", path, params, 0.2, 0.1, 1)
    assert sum(preview.totals().values()) == 30 and preview.totals()["test"] == 3
    assert preview.columns == ["a", "b", "kind"]
    assert preview.rows == [["0", "0.0", "cat"], ["1", "0.5", "dog"], ["2", "1.0", "eel"],
                            ["3", "1.5", "cat"], ["4", "2.0", "dog"]]
    assert not preview.images
    assert preview.summary().startswith("2 features, 3 classes; train ")


def test_csv_bad_cell_is_the_datasets_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,label\n1,x\n2,y\noops,x\n")
    with pytest.raises(DataFileError, match=r"bad\.csv, row 4, column 'a': 'oops' is not"):
        preview_dataset("csv", str(path), {}, 0.2, 0.2, 0)


def test_npz_flat_rows_and_image_shaped_samples(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "flat.npz", x=rng.normal(size=(40, 3)), y=np.arange(40) % 4,
             x_test=rng.normal(size=(8, 3)), y_test=np.arange(8) % 4)
    flat = preview_dataset("npz", str(tmp_path / "flat.npz"), {}, 0.25, 0.2, 2)
    assert flat.test_is_official and flat.counts["test"] == [2, 2, 2, 2]
    assert flat.counts == run_counts("npz", tmp_path / "flat.npz", {}, 0.25, 0.2, 2)
    assert flat.columns == ["label", "x0", "x1", "x2"] and len(flat.rows) == 5
    assert flat.rows[1][0] == "1"
    x = np.zeros((6, 1, 8, 8), np.float32)
    x[:, 0, :, :4] = 1.0  # left half white
    np.savez(tmp_path / "img.npz", x=x, y=np.arange(6) % 2)
    images = preview_dataset("npz", str(tmp_path / "img.npz"), {}, 0.0, 0.5, 0)
    assert len(images.images) == 6 and not images.rows
    first = images.images[0][0]
    assert first.shape == (8, 8) and first[0, 0] == 255 and first[0, 7] == 0


@pytest.mark.parametrize("version", ["binary", "python"])
def test_cifar_counts_names_and_pixels(tmp_path: Path, version: str) -> None:
    folder = tmp_path / version
    (write_binary if version == "binary" else write_python)(folder, 10)
    preview = preview_dataset("cifar10", str(folder), {"train_limit": 0}, 0.2, 0.2, 4)
    assert preview.class_names[:2] == ["thing-0", "thing-1"]
    assert preview.counts == run_counts("cifar10", folder, {}, 0.2, 0.2, 4)
    assert preview.totals() == {"train": 24, "val": 6, "test": 10}
    raw = get_dataset("cifar10").load(str(folder), {"train_limit": 0})
    image, label = preview.images[0]
    index = int(np.flatnonzero(raw.y_train == label)[0])
    assert image.shape == (32, 32, 3)
    assert np.array_equal(image, np.round(raw.x_train[index] * 255).astype(np.uint8)
                          .transpose(1, 2, 0))


def test_cifar100_has_its_hundred_fine_classes(tmp_path: Path) -> None:
    write_binary(tmp_path / "c100", 100)
    preview = preview_dataset("cifar100", str(tmp_path / "c100"), {}, 0.1, 0.2, 0)
    assert len(preview.class_names) == 100 and preview.class_names[99] == "thing-99"
    assert preview.counts == run_counts("cifar100", tmp_path / "c100", {}, 0.1, 0.2, 0)
    # the test files hold classes 0, 3, 6, ...: one sample of each present class in turn
    assert [label for _image, label in preview.images] == list(range(0, 36, 3))


def test_cifar_missing_files_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"CIFAR-10 files missing in .*empty"):
        (tmp_path / "empty").mkdir()
        preview_dataset("cifar10", str(tmp_path / "empty"), {}, 0.1, 0.2, 0)


def test_sample_indices_take_the_classes_in_turn() -> None:
    y = np.array([0, 0, 0, 1, 2, 2])
    assert sample_indices(y, 3, 5) == [0, 3, 4, 1, 5]
    assert sample_indices(y, 3, 12) == [0, 3, 4, 1, 5, 2]
