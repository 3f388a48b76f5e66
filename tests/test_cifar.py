"""CIFAR-10 / CIFAR-100 folders in both official versions, their bad files, a poisoned pickle."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from kdstudio.cli import main
from kdstudio.core.config import save_toml, validate
from kdstudio.core.data import get_dataset, prepare_data
from kdstudio.core.data.cifar import read_pickle
from kdstudio.core.store import Store
from tests.helpers import tiny_config

TRAIN_BATCH = 6  # images per CIFAR-10 training batch here (the official files hold 10,000)
TEST_SIZE = 10


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Protocol 2 as Python 2's cPickle wrote the official files: byte strings and text both
    as BINSTRING, so they load as bytes with encoding="bytes" and need no `_codecs` global."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_binstring(self, obj: bytes | str) -> None:
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_binstring
    dispatch[str] = save_binstring


def write_py2_pickle(path: Path, obj: object) -> None:
    with path.open("wb") as handle:
        Py2Pickler(handle, protocol=2).dump(obj)


def images(count: int, offset: int) -> np.ndarray:
    """Distinct uint8 images (N, 3072): image i's pixel j is (offset + 7 i + j) % 256."""
    index = np.arange(count)[:, None] * 7 + np.arange(3072)[None, :] + offset
    return (index % 256).astype(np.uint8)


def batches(classes: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple]:
    train_files = 5 if classes == 10 else 1
    size = TRAIN_BATCH if classes == 10 else 5 * TRAIN_BATCH
    train = [(images(size, 11 * b), (np.arange(size) * 3 + b) % classes)
             for b in range(train_files)]
    test = (images(TEST_SIZE, 200), (np.arange(TEST_SIZE) * 5) % classes)
    return train, test


def names(classes: int) -> list[str]:
    return [f"thing-{i}" for i in range(classes)]


def write_binary(folder: Path, classes: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    train, test = batches(classes)

    def records(pixels: np.ndarray, labels: np.ndarray) -> bytes:
        label_bytes = labels[:, None] if classes == 10 else np.stack([labels // 5, labels], 1)
        return np.concatenate([label_bytes.astype(np.uint8), pixels], axis=1).tobytes()

    if classes == 10:
        for i, batch in enumerate(train, start=1):
            (folder / f"data_batch_{i}.bin").write_bytes(records(*batch))
        (folder / "test_batch.bin").write_bytes(records(*test))
        (folder / "batches.meta.txt").write_text("\n".join(names(10)) + "\n\n")
    else:
        (folder / "train.bin").write_bytes(records(*train[0]))
        (folder / "test.bin").write_bytes(records(*test))
        (folder / "fine_label_names.txt").write_text("\n".join(names(100)) + "\n")


def write_python(folder: Path, classes: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    train, test = batches(classes)
    key = b"labels" if classes == 10 else b"fine_labels"

    def batch(pixels: np.ndarray, labels: np.ndarray, label: bytes) -> dict:
        entry = {b"batch_label": label, b"data": pixels, key: [int(v) for v in labels],
                 b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}
        if classes == 100:
            entry[b"coarse_labels"] = [int(v) // 5 for v in labels]
        return entry

    if classes == 10:
        for i, part in enumerate(train, start=1):
            write_py2_pickle(folder / f"data_batch_{i}", batch(*part, b"training batch"))
        write_py2_pickle(folder / "test_batch", batch(*test, b"testing batch"))
        write_py2_pickle(folder / "batches.meta", {
            b"label_names": [n.encode() for n in names(10)],
            b"num_cases_per_batch": TRAIN_BATCH, b"num_vis": 3072})
    else:
        write_py2_pickle(folder / "train", batch(*train[0], b"training batch"))
        write_py2_pickle(folder / "test", batch(*test, b"testing batch"))
        write_py2_pickle(folder / "meta", {
            b"fine_label_names": [n.encode() for n in names(100)],
            b"coarse_label_names": [b"group-%d" % i for i in range(20)]})


WRITERS = {"binary": write_binary, "python": write_python}
CASES = [(dataset, version) for dataset in ("cifar10", "cifar100")
         for version in ("binary", "python")]


def classes_of(dataset: str) -> int:
    return 10 if dataset == "cifar10" else 100


@pytest.mark.parametrize(("dataset", "version"), CASES)
def test_both_versions_give_the_written_images(tmp_path: Path, dataset: str,
                                               version: str) -> None:
    classes = classes_of(dataset)
    WRITERS[version](tmp_path, classes)
    cifar = get_dataset(dataset)
    assert cifar.check_path(str(tmp_path)) is None
    info = cifar.describe(str(tmp_path), {"train_limit": 0})
    assert info.input_shape == (3, 32, 32) and info.num_classes == classes
    assert info.class_names == names(classes)
    raw = cifar.load(str(tmp_path), {"train_limit": 0})
    train, test = batches(classes)
    assert raw.x_train.shape == (5 * TRAIN_BATCH, 3, 32, 32) and raw.x_train.dtype == np.float32
    assert raw.x_test.shape == (TEST_SIZE, 3, 32, 32)
    assert raw.y_train.dtype == np.int64 and raw.y_test.dtype == np.int64
    assert raw.y_train.tolist() == np.concatenate([y for _, y in train]).tolist()
    assert raw.y_test.tolist() == test[1].tolist()
    assert raw.class_names == names(classes)
    # image 1 of the last training batch: red row 0 is its first 32 bytes, blue its last row
    pixels = train[-1][0][1]
    index = len(raw.y_train) - len(train[-1][1]) + 1
    assert np.array_equal(raw.x_train[index, 0, 0] * 255, pixels[:32].astype(np.float32))
    assert np.array_equal(raw.x_train[index, 0, :, 0] * 255, pixels[:1024:32].astype(np.float32))
    assert np.array_equal(raw.x_train[index, 2, 31] * 255, pixels[-32:].astype(np.float32))
    assert raw.x_train.min() == 0.0 and raw.x_train.max() == 1.0
    assert len(cifar.load(str(tmp_path), {"train_limit": 4}).y_train) == 4


def test_the_archive_subfolder_is_found(tmp_path: Path) -> None:
    write_python(tmp_path / "cifar-10-batches-py", 10)
    assert get_dataset("cifar10").check_path(str(tmp_path)) is None
    assert len(get_dataset("cifar10").load(str(tmp_path), {"train_limit": 0}).y_test) == 10


def test_the_global_name_of_numpy_1_is_admitted(tmp_path: Path) -> None:
    """The official files (numpy 1, Python 2) name `numpy.core.multiarray._reconstruct`."""
    write_python(tmp_path, 10)
    path = tmp_path / "test_batch"
    written = path.read_bytes()
    assert b"cnumpy._core.multiarray\n_reconstruct\n" in written
    path.write_bytes(written.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    raw = get_dataset("cifar10").load(str(tmp_path), {"train_limit": 0})
    assert np.array_equal(raw.x_test[3].reshape(-1) * 255, images(TEST_SIZE, 200)[3])


def test_prepare_data_uses_the_official_test_split(tmp_path: Path) -> None:
    write_binary(tmp_path, 100)
    splits = prepare_data("cifar100", str(tmp_path), {}, 0.2, seed=0)
    assert splits.sizes() == {"train": 24, "val": 6, "test": 10}
    assert splits.test_is_official and tuple(splits.x_train.shape[1:]) == (3, 32, 32)
    assert len(splits.mean) == 3


@pytest.mark.parametrize("version", ["binary", "python"])
def test_missing_batches_are_listed(tmp_path: Path, version: str) -> None:
    WRITERS[version](tmp_path, 10)
    suffix = ".bin" if version == "binary" else ""
    (tmp_path / f"data_batch_3{suffix}").unlink()
    (tmp_path / f"test_batch{suffix}").unlink()
    problem = get_dataset("cifar10").check_path(str(tmp_path))
    assert problem.startswith(f"CIFAR-10 files missing in {tmp_path}: "
                              f"data_batch_3{suffix}, test_batch{suffix}; ")
    assert "the binary version (data_batch_1.bin … data_batch_5.bin, test_batch.bin, " \
           "batches.meta.txt) or the python version (data_batch_1 … data_batch_5, " \
           "test_batch, batches.meta)" in problem
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        get_dataset("cifar10").load(str(tmp_path), {"train_limit": 0})


def test_no_folder_and_not_a_folder(tmp_path: Path) -> None:
    assert get_dataset("cifar100").check_path("") == "give the folder holding the CIFAR-100 files"
    problem = get_dataset("cifar100").check_path(str(tmp_path / "nowhere"))
    assert problem.startswith(f"{tmp_path / 'nowhere'} is not a folder; the folder must hold "
                              "the binary version (train.bin, test.bin, fine_label_names.txt) "
                              "or the python version (train, test, meta)")
    for odd in ("a" * 300, "\x00", "~nobody-here/x"):  # name too long, a NUL, no such user
        info = get_dataset("cifar10").describe(odd, {"train_limit": 0})
        assert info.class_names == [f"class {i}" for i in range(10)]
        assert "is not a folder; the folder must hold" in get_dataset("cifar10").check_path(odd)


def test_truncated_binary_batch(tmp_path: Path) -> None:
    write_binary(tmp_path, 100)
    path = tmp_path / "test.bin"
    path.write_bytes(path.read_bytes()[:-100])
    size = 10 * 3074 - 100
    expected = (f"{path} is truncated or not a CIFAR-100 binary batch: {size:,} bytes is not "
                f"a whole number of 3074-byte records")
    assert get_dataset("cifar100").check_path(str(tmp_path)) == expected
    with pytest.raises(ValueError) as error:
        get_dataset("cifar100").load(str(tmp_path), {"train_limit": 0})
    assert str(error.value) == expected


def test_binary_label_out_of_range(tmp_path: Path) -> None:
    write_binary(tmp_path, 10)
    path = tmp_path / "data_batch_2.bin"
    data = bytearray(path.read_bytes())
    data[3 * 3073] = 12  # record 3's label
    path.write_bytes(bytes(data))
    assert get_dataset("cifar10").check_path(str(tmp_path)) == (
        f"{path}: record 3 has label 12, outside 0..9 (1 such record(s))")


def test_python_label_out_of_range_and_wrong_count(tmp_path: Path) -> None:
    write_python(tmp_path, 100)
    path = tmp_path / "test"
    batch = read_pickle(path)
    batch[b"fine_labels"][0] = 100
    write_py2_pickle(path, batch)
    assert get_dataset("cifar100").check_path(str(tmp_path)) == (
        f"{path}: record 0 has label 100, outside 0..99 (1 such record(s))")
    batch[b"fine_labels"] = batch[b"fine_labels"][1:]
    write_py2_pickle(path, batch)
    assert get_dataset("cifar100").check_path(str(tmp_path)) == (
        f"{path}: 9 labels for 10 images")
    for labels in ([b"cat"] * 10, [2**70] * 10):
        batch[b"fine_labels"] = labels
        write_py2_pickle(path, batch)
        assert get_dataset("cifar100").check_path(str(tmp_path)) == (
            f"{path}: 'fine_labels' must be a list of whole numbers")


def test_pickle_without_the_expected_keys(tmp_path: Path) -> None:
    write_python(tmp_path, 10)
    path = tmp_path / "data_batch_4"
    write_py2_pickle(path, {b"data": images(2, 0), b"filenames": [b"a", b"b"]})
    assert get_dataset("cifar10").check_path(str(tmp_path)) == (
        f"{path} has no 'labels' entry (it holds: data, filenames)")
    write_py2_pickle(path, {b"data": images(2, 0)[:, :100], b"labels": [0, 1]})
    assert get_dataset("cifar10").check_path(str(tmp_path)) == (
        f"{path}: 'data' must be a uint8 array of shape (N, 3072) "
        f"(got uint8 array of shape (2, 100))")
    write_py2_pickle(path, [1, 2])
    assert get_dataset("cifar10").check_path(str(tmp_path)) == (
        f"{path} holds list, not the dict of a CIFAR file")
    meta = tmp_path / "batches.meta"
    write_py2_pickle(meta, {b"label_names": [b"a", b"b"]})
    assert get_dataset("cifar10").check_path(str(tmp_path)) == (
        f"{meta} names 2 classes, CIFAR-10 has 10")
    meta.write_bytes(b"not a pickle")
    assert get_dataset("cifar10").check_path(str(tmp_path)).startswith(
        f"{meta} is not a readable CIFAR pickle")


class Payload:
    """Unpickling it would run `command` in a shell."""

    def __init__(self, call: object, argument: str) -> None:
        self.call, self.argument = call, argument

    def __reduce__(self) -> tuple:
        return self.call, (self.argument,)


def poison(folder: Path, call: object, argument: str) -> Path:
    write_python(folder, 10)
    path = folder / "data_batch_1"
    payload = {b"data": images(TRAIN_BATCH, 0), b"labels": [0] * TRAIN_BATCH,
               b"batch_label": Payload(call, argument)}
    write_py2_pickle(path, payload)
    return path


@pytest.mark.parametrize(("call", "shown"), [(os.system, f"{os.name}.system"),
                                             (eval, "__builtin__.eval")])  # as protocol 2 names it
def test_a_poisoned_pickle_is_refused_and_runs_nothing(tmp_path: Path, call: object,
                                                       shown: str) -> None:
    def command(marker: Path) -> str:
        return f"touch {marker}" if call is os.system else f"open({str(marker)!r}, 'w')"

    # the payload is live: a plain unpickler runs it
    live = poison(tmp_path / "live", call, command(tmp_path / "live-marker"))
    with live.open("rb") as handle:
        pickle.load(handle, encoding="bytes")
    assert (tmp_path / "live-marker").exists()
    marker = tmp_path / "pwned"
    path = poison(tmp_path / "cifar", call, command(marker))
    expected = (f"{path}: refused to load it, it asks to run {shown} (a CIFAR file holds only "
                f"numpy arrays, lists and strings); nothing in it was run")
    assert get_dataset("cifar10").check_path(str(tmp_path / "cifar")) == expected
    with pytest.raises(ValueError) as error:
        get_dataset("cifar10").load(str(tmp_path / "cifar"), {"train_limit": 0})
    assert str(error.value) == expected
    assert not marker.exists()


def test_a_poisoned_pickle_stops_kdstudio_run_with_exit_2(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    path = poison(tmp_path / "cifar", os.system, f"touch {marker}")
    config = cifar_config(tmp_path / "cifar")
    save_toml(config, tmp_path / "cfg.toml")
    code = main(["run", str(tmp_path / "cfg.toml"), "--db", str(tmp_path / "x.db")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"kdstudio: data.path: {path}: refused to load it, it asks to run "
                   f"{os.name}.system (a CIFAR file holds only numpy arrays, lists and "
                   f"strings); nothing in it was run"]
    assert not marker.exists()
    if (tmp_path / "x.db").exists():
        with Store(tmp_path / "x.db") as store:
            assert store.list_runs() == []


def cifar_config(folder: Path):
    config = tiny_config()
    config.data.dataset = "cifar10"
    config.data.path = str(folder)
    config.data.params = {}
    config.data.batch_size = 8
    config.data.val_fraction = 0.2
    config.teacher.arch = "mlp"
    config.teacher.params = {"hidden_sizes": [16]}
    config.teacher.epochs = 1
    config.student.arch = "cnn"
    config.student.params = {}
    config.optim.epochs = 1
    return config


def test_a_tiny_run_on_a_cifar10_folder(tmp_path: Path, capsys) -> None:
    write_binary(tmp_path / "cifar", 10)
    config = cifar_config(tmp_path / "cifar")
    assert validate(config) == []
    save_toml(config, tmp_path / "cfg.toml")
    db = tmp_path / "x.db"
    assert main(["run", str(tmp_path / "cfg.toml"), "--db", str(db), "--quiet"]) == 0
    with Store(db) as store:
        (row,) = store.list_runs()
        assert row["status"] == "completed"
        assert 0.0 <= row["student_test_acc"] <= 1.0
        assert row["config"]["data"]["dataset"] == "cifar10"
