"""The `csv` and `npz` datasets: values, labels, class names, every bad file named with its
row and column (CSV) or array (npz), and a tiny run on each from the command line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from kdstudio.cli import main
from kdstudio.core.config import save_toml, validate
from kdstudio.core.config.fields import param_fields
from kdstudio.core.data import DataFileError, get_dataset, prepare_data
from kdstudio.core.data.csv_table import scan_table
from kdstudio.core.store import Store
from tests.helpers import tiny_config


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def csv_problem(path: str, label_column: str = "label") -> str:
    with pytest.raises(DataFileError) as caught:
        get_dataset("csv").load(path, {"label_column": label_column})
    return str(caught.value)


def npz_problem(path: Path) -> str:
    with pytest.raises(DataFileError) as caught:
        get_dataset("npz").load(str(path), {})
    return str(caught.value)


# ------------------------------------------------------------------------------------- csv
def test_csv_with_names_as_labels(tmp_path: Path) -> None:
    path = write(tmp_path / "pets.csv",
                 "weight, kind ,height\n4.5,dog,30\n3,cat,25\n\n-1e2,bird,7.25\n8,dog,40\n")
    dataset = get_dataset("csv")
    info = dataset.describe(path, {"label_column": "kind"})
    assert info.input_shape == (2,) and info.num_classes == 3
    assert info.class_names == ["bird", "cat", "dog"]
    raw = dataset.load(path, {"label_column": "kind"})
    assert raw.x_train.dtype == np.float32 and raw.y_train.dtype == np.int64
    np.testing.assert_array_equal(raw.x_train, [[4.5, 30], [3, 25], [-100, 7.25], [8, 40]])
    assert raw.y_train.tolist() == [2, 1, 0, 2]
    assert raw.class_names == ["bird", "cat", "dog"]
    assert raw.x_test is None and raw.y_test is None


def test_csv_with_integers_as_labels(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "label,a,b,c\n3,1,2,3\n0,4,5,6\n1,7,8,9\n")
    raw = get_dataset("csv").load(path, {"label_column": "label"})
    assert raw.y_train.tolist() == [3, 0, 1]
    assert raw.class_names == ["0", "1", "2", "3"]  # classes 0..max, 2 has no rows
    assert raw.x_train.shape == (3, 3) and raw.x_train[2].tolist() == [7, 8, 9]
    assert get_dataset("csv").describe(path, {"label_column": "label"}).num_classes == 4


def test_csv_bad_cells_name_file_row_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.csv", "x1,x2,label\n1,2,a\n3,four,b\n")
    assert csv_problem(path) == f"{path}, row 3, column 'x2': 'four' is not a finite number"
    path = write(tmp_path / "empty_cell.csv", "x1,x2,label\n1,2,a\n3,4,b\n5,,a\n")
    assert csv_problem(path) == f"{path}, row 4, column 'x2': empty cell"
    path = write(tmp_path / "nan.csv", "x1,x2,label\nnan,2,a\n")
    assert csv_problem(path) == f"{path}, row 2, column 'x1': 'nan' is not a finite number"
    path = write(tmp_path / "nolabel.csv", "x1,x2,label\n1,2,a\n3,4,\n")
    assert csv_problem(path) == f"{path}, row 3, column 'label': empty label"
    path = write(tmp_path / "negative.csv", "x1,label\n1,0\n2,-1\n")
    assert csv_problem(path).startswith(f"{path}, row 3, column 'label': label -1 is negative")


def test_csv_bad_layouts_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "cols.csv", "a,b,c\n1,2,3\n")
    assert csv_problem(path) == (f"{path} has no column 'label' for the labels (its columns: "
                                 "a, b, c); set data.params.label_column")
    path = write(tmp_path / "ragged.csv", "a,b,label\n1,2,x\n1,2,3,x\n")
    assert csv_problem(path) == f"{path}, row 3: 4 cells, the header has 3"
    path = write(tmp_path / "empty.csv", "")
    assert csv_problem(path) == f"{path} is empty (it needs a header row and data rows)"
    path = write(tmp_path / "header.csv", "a,label\n")
    assert csv_problem(path) == f"{path} has a header but no data rows"
    assert csv_problem(str(tmp_path / "gone.csv")) == f"no such file {tmp_path / 'gone.csv'}"
    assert get_dataset("csv").check_path(str(tmp_path)) == f"{tmp_path} is a folder, not a CSV file"


def test_csv_too_big_for_memory_is_refused_before_reading(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path / "t.csv", "a,b,label\n1,2,x\n3,4,y\n")
    monkeypatch.setattr("kdstudio.core.memory.available_memory", lambda: 10)
    problem = csv_problem(path)
    assert problem.startswith(f"{path} (2 rows x 2 features) would need 48 B of memory")
    with pytest.raises(DataFileError, match="would need 48 B of memory"):
        get_dataset("csv").describe(path, {"label_column": "label"})


def test_csv_description_follows_the_file_as_it_changes(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "a,label\n1,x\n2,y\n")
    assert get_dataset("csv").describe(path, {"label_column": "label"}).class_names == ["x", "y"]
    write(tmp_path / "t.csv", "a,b,label\n1,2,x\n2,3,y\n4,5,z\n")
    info = get_dataset("csv").describe(path, {"label_column": "label"})
    assert info.class_names == ["x", "y", "z"] and info.input_shape == (2,)


# ------------------------------------------------------------------------------------- npz
def test_npz_without_test_arrays(tmp_path: Path) -> None:
    x = np.arange(60, dtype=np.uint8).reshape(5, 3, 4)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 4, 1, 1, 0]))
    dataset = get_dataset("npz")
    info = dataset.describe(str(tmp_path / "d.npz"), {})
    assert info.input_shape == (3, 4) and info.num_classes == 5
    assert info.class_names == ["0", "1", "2", "3", "4"]
    raw = dataset.load(str(tmp_path / "d.npz"), {})
    assert raw.x_train.dtype == np.float32 and raw.y_train.dtype == np.int64
    np.testing.assert_array_equal(raw.x_train, x.astype(np.float32))
    assert raw.y_train.tolist() == [0, 4, 1, 1, 0] and raw.x_test is None


def test_npz_with_test_arrays_and_float_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, x_test = rng.normal(size=(40, 6)), rng.normal(size=(10, 6))
    np.savez_compressed(tmp_path / "d.npz", x=x, y=np.arange(40.0) % 3, x_test=x_test,
                        y_test=np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1]))
    raw = get_dataset("npz").load(str(tmp_path / "d.npz"), {})
    assert raw.class_names == ["0", "1", "2", "3"]  # the test split has class 3
    np.testing.assert_allclose(raw.x_test, x_test.astype(np.float32))
    assert raw.y_train[:4].tolist() == [0, 1, 2, 0] and raw.y_test.tolist()[3] == 3
    splits = prepare_data("npz", str(tmp_path / "d.npz"), {}, 0.25, seed=0)
    assert splits.test_is_official and splits.sizes() == {"train": 30, "val": 10, "test": 10}


@pytest.mark.parametrize(("arrays", "expected"), [
    ({"y": np.zeros(3)}, " has no array 'x' (it holds: y)"),
    ({"x": np.zeros((3, 2))}, " has no array 'y' (it holds: x)"),
    ({"x": np.zeros((3, 2)), "y": np.zeros(4)}, ": 'x' has 3 samples, 'y' 4 labels"),
    ({"x": np.zeros((3, 2)), "y": np.array([0, 1.5, 2])},
     ", array 'y': labels must be whole numbers"),
    ({"x": np.zeros((3, 2)), "y": np.array([0, -2, 1])},
     ", array 'y': label -2 is negative"),
    ({"x": np.array([["a", "b"]] * 3), "y": np.zeros(3, int)},
     ", array 'x': dtype <U1 is not numeric"),
    ({"x": np.array([[0, np.inf]] * 3), "y": np.zeros(3, int)},
     ", array 'x': non-finite values"),
    ({"x": np.zeros((3, 2)), "y": np.zeros(3, int), "x_test": np.zeros((1, 2))},
     " has 'x_test' but no 'y_test'; give both or neither"),
    ({"x": np.zeros((3, 2)), "y": np.zeros(3, int), "y_test": np.zeros(1, int)},
     " has 'y_test' but no 'x_test'; give both or neither"),
    ({"x": np.zeros((3, 2)), "y": np.zeros(3, int), "x_test": np.zeros((1, 3)),
      "y_test": np.zeros(1, int)}, ": 'x_test' samples are shaped (3,), those of 'x' (2,)"),
])
def test_npz_bad_arrays_name_the_file_and_array(tmp_path: Path, arrays, expected) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    problem = npz_problem(tmp_path / "bad.npz")
    assert problem.startswith(f"{tmp_path / 'bad.npz'}{expected}"), problem


class Payload:
    """Unpickling this makes the folder `marker`: the proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_npz_object_array_is_refused_and_nothing_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.zeros((2, 2)), y=np.array([Payload(tmp_path / "ran"), 0], dtype=object))
    with pytest.raises(DataFileError):
        get_dataset("npz").describe(str(path), {})
    assert npz_problem(path) == (f"{path}, array 'y': an object array, refused (it would "
                                 "have to be unpickled); save plain numeric arrays")
    assert not (tmp_path / "ran").exists()
    with np.load(path, allow_pickle=True) as archive:  # the payload is real: unpickled, it runs
        archive["y"]
    assert (tmp_path / "ran").is_dir()


def test_npz_not_a_zip_and_too_big(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "d.npz"
    path.write_bytes(b"not a zip")
    assert npz_problem(path) == (f"{path} is not an .npz file (not a zip archive of .npy "
                                 "arrays)")
    np.savez(path, x=np.zeros((10, 5)), y=np.zeros(10, int))
    monkeypatch.setattr("kdstudio.core.memory.available_memory", lambda: 10)
    assert npz_problem(path).startswith(f"the arrays of {path} would need 1.0 kB of memory")


# ------------------------------------------------------------------------------- end to end
def table_rows(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 3, count)
    return rng.normal(size=(count, 4)) + labels[:, None] * 2.0, labels


def run_config(tmp_path: Path, dataset: str, path: Path, params: dict) -> Path:
    config = tiny_config()
    config.data.dataset, config.data.path, config.data.params = dataset, str(path), params
    config.teacher.epochs, config.optim.epochs = 1, 1
    assert validate(config) == []
    save_toml(config, tmp_path / "cfg.toml")
    return tmp_path / "cfg.toml"


def completed_test_accuracy(db: Path) -> float:
    with Store(db) as store:
        (row,) = store.list_runs()
        assert row["status"] == "completed"
        return store.get_run(row["id"])["summary"]["student_test_acc"]


def test_csv_run_end_to_end(tmp_path: Path) -> None:
    x, labels = table_rows(np.random.default_rng(1), 120)
    names = np.array(["low", "mid", "high"])[labels]
    lines = ["f1,f2,f3,f4,class"] + [",".join(f"{v:.4f}" for v in r) + f",{n}"
                                      for r, n in zip(x, names, strict=True)]
    path = tmp_path / "table.csv"
    path.write_text("\n".join(lines) + "\n")
    cfg = run_config(tmp_path, "csv", path, {"label_column": "class"})
    assert main(["run", str(cfg), "--db", str(tmp_path / "h.db"), "--quiet"]) == 0
    assert 0.0 <= completed_test_accuracy(tmp_path / "h.db") <= 1.0


def test_npz_run_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    x, y = table_rows(rng, 120)
    x_test, y_test = table_rows(rng, 30)
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x_test, y_test=y_test)
    cfg = run_config(tmp_path, "npz", tmp_path / "d.npz", {})
    assert main(["run", str(cfg), "--db", str(tmp_path / "h.db"), "--quiet"]) == 0
    assert 0.0 <= completed_test_accuracy(tmp_path / "h.db") <= 1.0


def cli_error(tmp_path: Path, dataset: str, path: Path, params: dict, capsys) -> str:
    config = tiny_config()
    config.data.dataset, config.data.path, config.data.params = dataset, str(path), params
    save_toml(config, tmp_path / "cfg.toml")
    db = tmp_path / "h.db"
    assert main(["run", str(tmp_path / "cfg.toml"), "--db", str(db)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    if db.exists():  # a file problem found while loading: the history holds no run
        with Store(db) as store:
            assert store.list_runs() == []
    return lines[0]


def test_cli_bad_csv_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b,label\n1,2,x\n1,oops,y\n")
    assert cli_error(tmp_path, "csv", path, {}, capsys) == (
        f"kdstudio: data: {path}, row 3, column 'b': 'oops' is not a finite number")
    path.write_text("a,b\n1,2\n")
    assert cli_error(tmp_path, "csv", path, {}, capsys) == (
        f"kdstudio: data.path: {path} has no column 'label' for the labels (its columns: a, b);"
        " set data.params.label_column")
    assert cli_error(tmp_path, "csv", tmp_path / "gone.csv", {}, capsys) == (
        f"kdstudio: data.path: no such file {tmp_path / 'gone.csv'}")


def test_cli_bad_npz_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    np.savez(tmp_path / "bad.npz", x=np.array([[np.nan, 1.0]] * 6), y=np.zeros(6, int))
    assert cli_error(tmp_path, "npz", tmp_path / "bad.npz", {}, capsys).startswith(
        f"kdstudio: data: {tmp_path / 'bad.npz'}, array 'x': non-finite values")
    np.savez(tmp_path / "bad.npz", x=np.zeros((6, 2)))
    assert cli_error(tmp_path, "npz", tmp_path / "bad.npz", {}, capsys) == (
        f"kdstudio: data.path: {tmp_path / 'bad.npz'} has no array 'y' (it holds: x); it needs "
        "x (inputs) and y (labels), optionally x_test and y_test")


def test_scan_reports_spreadsheet_rows_past_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "a,label\n\n1,x\n\n2,y\n")
    assert scan_table(path, "label").row_numbers == [3, 5]


def test_the_form_offers_label_column_as_text() -> None:
    (field,) = param_fields("data.params", "csv")
    assert (field.key, field.kind, field.default) == ("data.params.label_column", "text", "label")
    assert param_fields("data.params", "npz") == []
