"""bench/pipeline.py on a handful of images: the PNG folder it writes, and that its bare loop
and the engine train alike (same files, order, initial weights and optimiser)."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.test_data import make_fashion_folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import pipeline  # noqa: E402


@pytest.fixture
def png_folder(tmp_path: Path) -> Path:
    make_fashion_folder(tmp_path / "idx", n_train=60, n_test=12)
    folder = tmp_path / "png"
    assert pipeline.write_folder(folder, 0, tmp_path / "idx") == 72
    return folder


def test_folder_holds_every_image_once_and_is_reused(png_folder: Path, tmp_path: Path) -> None:
    train = sorted((png_folder / "train").glob("*/*.png"))
    assert len(train) == 60 and len(list((png_folder / "test").glob("*/*.png"))) == 12
    first = png_folder / "train" / pipeline.class_folder(0) / "00000.png"
    source = pipeline.read_idx(tmp_path / "idx" / "train-images-idx3-ubyte.gz")
    with Image.open(first) as image:
        assert np.array_equal(np.asarray(image), source[0])  # lossless, label 0 of the IDX
    written = first.stat().st_mtime_ns
    assert pipeline.write_folder(png_folder, 0, tmp_path / "idx") == 72
    assert first.stat().st_mtime_ns == written  # the marker says it is complete: kept


@pytest.mark.parametrize("loader", ["memory", "stream"])
def test_bare_loop_and_engine_end_with_the_same_weights(png_folder: Path, tmp_path: Path,
                                                        loader: str) -> None:
    plan = tmp_path / "plan.json"
    pipeline.make_plan(png_folder, plan)
    args = Namespace(folder=png_folder, workers=0, loader=loader, threads=1, plan=plan, batch=8)
    threads = torch.get_num_threads()
    try:
        bare = pipeline.bare_child(args)
        engine = pipeline.engine_child(args)
    finally:
        torch.set_num_threads(threads)
    assert bare["samples"] == engine["samples"] == 54  # the engine's train split
    assert bare["weights"] == engine["weights"]  # bit for bit
    assert bare["val_acc"] == engine["val_acc"]
    assert bare["seconds"] > 0 and engine["seconds"] > 0


def test_interleaved_bare_steps_leave_the_engine_run_unchanged(png_folder: Path,
                                                              tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    pipeline.make_plan(png_folder, plan)
    args = Namespace(folder=png_folder, workers=0, loader="stream", threads=1, plan=plan,
                     batch=8)
    threads = torch.get_num_threads()
    try:
        alone = pipeline.engine_child(args)
        both = pipeline.interleaved_child(args)
    finally:
        torch.set_num_threads(threads)
    assert both["engine"]["weights"] == both["bare"]["weights"] == alone["weights"]
    assert both["engine"]["loader"] == alone["loader"] == "stream, 0 worker processes"
    assert both["engine"]["seconds"] > 0 and both["bare"]["seconds"] > 0
