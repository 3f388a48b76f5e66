"""Datasets: shapes, seeded splits, train-only normalisation, the IDX reader."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from kdstudio.core.data import channel_stats, list_datasets, prepare_data
from kdstudio.core.data.files import read_idx


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def make_fashion_folder(folder: Path, n_train: int = 50, n_test: int = 20) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)), True)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(n_train) % 10, True)
    write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)), False)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.arange(n_test) % 10, False)


def test_builtins_are_registered() -> None:
    assert {"digits", "mnist1d", "fashion-mnist", "synthetic"} <= set(list_datasets())


def test_digits_as_images_and_vectors() -> None:
    images = prepare_data("digits", "", {}, 0.1, seed=0)
    vectors = prepare_data("digits", "", {"as_image": False}, 0.1, seed=0)
    assert images.input_shape == (1, 8, 8) and images.x_train.shape[1:] == (1, 8, 8)
    assert vectors.input_shape == (64,)
    total = sum(images.sizes().values())
    assert total == 1797
    assert images.sizes()["test"] == round(1797 * 0.2)
    assert not images.test_is_official
    assert images.class_names == [str(i) for i in range(10)]


def test_split_is_seeded_and_disjoint() -> None:
    params = {"samples": 300, "dims": 5, "classes": 3}
    a = prepare_data("synthetic", "", params, 0.2, seed=1)
    b = prepare_data("synthetic", "", params, 0.2, seed=1)
    c = prepare_data("synthetic", "", params, 0.2, seed=2)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.x_train, c.x_train)
    # the test split does not move with the seed (its normalisation does: train-only stats)
    assert torch.equal(a.y_test, c.y_test)
    raw_a = a.x_test * a.std[0] + a.mean[0]
    raw_c = c.x_test * c.std[0] + c.mean[0]
    assert torch.allclose(raw_a, raw_c, atol=1e-4)
    rows = {tuple(r.tolist()) for r in a.x_train} | {tuple(r.tolist()) for r in a.x_val}
    assert len(rows) == len(a.x_train) + len(a.x_val)
    assert not rows & {tuple(r.tolist()) for r in a.x_test}


def test_normalisation_uses_train_split_only() -> None:
    params = {"samples": 400, "dims": 4, "classes": 2, "separation": 3.0}
    data = prepare_data("synthetic", "", params, 0.25, seed=0)
    assert float(data.x_train.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(data.x_train.std()) == pytest.approx(1.0, abs=1e-2)
    assert float(data.x_val.mean()) != pytest.approx(0.0, abs=1e-5)


def test_channel_stats_per_channel() -> None:
    x = np.stack([np.zeros((5, 4, 4)), np.full((5, 4, 4), 3.0)], axis=1)
    mean, std = channel_stats(x)
    assert mean.tolist() == [0.0, 3.0]
    assert std.tolist() == [1e-8, 1e-8]


def test_idx_reader_plain_and_gzip(tmp_path: Path) -> None:
    array = np.arange(24).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte", array, False)
    write_idx(tmp_path / "a-idx3-ubyte.gz", array, True)
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte"), array)
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), array)
    (tmp_path / "bad").write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


def test_fashion_mnist_from_a_folder(tmp_path: Path) -> None:
    make_fashion_folder(tmp_path / "fm")
    data = prepare_data("fashion-mnist", str(tmp_path / "fm"), {}, 0.2, seed=0)
    assert data.input_shape == (1, 28, 28)
    assert data.sizes() == {"train": 40, "val": 10, "test": 20}
    assert data.test_is_official
    assert data.class_names[9] == "Ankle boot"


def test_fashion_mnist_missing_files_says_where(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as error:
        prepare_data("fashion-mnist", str(tmp_path / "nowhere"), {}, 0.1, seed=0)
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message
    assert "train-images-idx3-ubyte" in message and "dataset-fashion-mnist" in message


def test_mnist1d_is_generated_once_and_cached(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KDSTUDIO_CACHE", str(tmp_path))
    data = prepare_data("mnist1d", "", {}, 0.1, seed=0)
    assert data.input_shape == (1, 40)
    assert data.sizes() == {"train": 3600, "val": 400, "test": 1000}
    assert (tmp_path / "mnist1d-seed42.npz").exists()
    again = prepare_data("mnist1d", "", {}, 0.1, seed=0)
    assert torch.equal(data.x_test, again.x_test)


def test_digits_match_scikit_learn_without_importing_it() -> None:
    import json
    import subprocess
    import sys

    code = ("import json, sys; from kdstudio.core.data.builtin import _digits_arrays; "
            "x, y = _digits_arrays(); print(json.dumps([x.tolist(), y.tolist(), "
            "'sklearn.datasets' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    pixels, labels, imported = json.loads(out)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    assert not imported
    assert np.array_equal(np.array(pixels), bunch.data)
    assert np.array_equal(np.array(labels), bunch.target)
