"""Training data: folders, deterministic splits and batches, dead leaves, pairs, bad files."""

import logging

import numpy as np
import pytest
from PIL import Image

from train.data import (PatchConfig, PatchSampler, crop_to_multiple, dead_leaves, is_held_out, list_images, load_images,
                        paired_files)
from train.degradations import DegradationConfig


def write(path, size=(80, 60), mode="RGB", seed=0):
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    img = img.convert(mode) if mode != "RGB" else img
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def test_list_images_is_recursive_sorted_and_filters_suffixes(tmp_path):
    write(tmp_path / "b.png")
    write(tmp_path / "sub" / "a.JPG")
    write(tmp_path / "sub" / "deep" / "c.tif", mode="L")
    (tmp_path / "notes.txt").write_text("x")
    names = [p.name for p in list_images(tmp_path)]
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == ["b.png", "sub/a.JPG", "sub/deep/c.tif"]
    assert set(names) == {"b.png", "a.JPG", "c.tif"}
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "missing")


def test_held_out_split_is_deterministic_and_about_five_percent():
    from pathlib import Path
    paths = [Path(f"img_{i}.jpg") for i in range(2000)]
    held = [p for p in paths if is_held_out(p)]
    assert held == [p for p in paths if is_held_out(p)]
    assert 60 < len(held) < 140


def test_batches_are_keyed_on_step(tmp_path):
    images = load_images([write(tmp_path / f"{i}.png", seed=i) for i in range(3)])
    sampler = PatchSampler(images, DegradationConfig(sigma_min=10, sigma_max=10), PatchConfig(patch=32, batch=4, seed=3))
    a, b = sampler.batch(7), sampler.batch(7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(sampler.batch(8)[1], a[1])
    noisy, clean = a
    assert noisy.shape == clean.shape == (4, 3, 32, 32)
    assert 5 < (noisy - clean).std() * 255 < 15


def test_grayscale_files_load_as_three_channels(tmp_path):
    (img,) = load_images([write(tmp_path / "g.png", mode="L")])
    assert img.shape == (60, 80, 3) and np.array_equal(img[..., 0], img[..., 2])


def test_corrupt_training_images_are_reported_and_skipped(tmp_path, caplog):
    good = write(tmp_path / "good.png")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with caplog.at_level(logging.WARNING):
        images = load_images([good, bad])
    assert len(images) == 1
    assert "bad.jpg" in caplog.text


def test_no_photos_means_dead_leaves(tmp_path):
    sampler = PatchSampler([], DegradationConfig(), PatchConfig(patch=32, batch=2))
    noisy, clean = sampler.batch(0)
    assert clean.shape == (2, 3, 32, 32) and 0 <= clean.min() and clean.max() <= 1
    with pytest.raises(ValueError, match="at least 64 px"):
        PatchSampler([np.zeros((10, 10, 3), np.uint8)], DegradationConfig(), PatchConfig(patch=64))


def test_dead_leaves_has_edges_and_flat_regions():
    img = dead_leaves(96, np.random.default_rng(0))
    assert img.shape == (96, 96, 3)
    grad = np.abs(np.diff(img, axis=1)).max(axis=2)
    assert (grad == 0).mean() > 0.5 and (grad > 0.1).sum() > 50


def test_paired_files_match_by_stem(tmp_path):
    write(tmp_path / "blur" / "0001.png")
    write(tmp_path / "blur" / "0002.png")
    write(tmp_path / "sharp" / "0001.png")
    pairs = paired_files(tmp_path / "blur", tmp_path / "sharp")
    assert [(d.name, c.name) for d, c in pairs] == [("0001.png", "0001.png")]
    write(tmp_path / "other" / "x.png")
    with pytest.raises(ValueError, match="share a name"):
        paired_files(tmp_path / "blur", tmp_path / "other")


def test_crop_to_multiple():
    assert crop_to_multiple(np.zeros((33, 70, 3)), 8).shape == (32, 64, 3)
