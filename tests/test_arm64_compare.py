"""scripts/arm64_compare.py: the agreement figure of `make arm64-check` (the emulated run itself is a separate job)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from script_module import load_script

ROOT = Path(__file__).resolve().parent.parent
arm64_compare = load_script("arm64_compare")


def _side(folder: Path, raw: np.ndarray, image: np.ndarray, machine: str, scale: float = 1 / 255) -> Path:
    (folder / "images").mkdir(parents=True)
    info = {"machine": machine, "python": "3.11", "numpy": "x", "interpreter": "fake", "interpreter_version": "0",
            "model": "m.tflite", "tiles": len(raw), "out_scale": scale, "out_zero": -128, "out_dtype": raw.dtype.name}
    np.savez(folder / "raw.npz", raw=raw, info=json.dumps(info))
    Image.fromarray(image).save(folder / "images" / "a_restored.png")
    return folder


@pytest.fixture
def base():
    rng = np.random.default_rng(0)
    return rng.integers(-100, 100, (2, 8, 8, 3)).astype(np.int8), rng.integers(0, 250, (16, 16, 3)).astype(np.uint8)


def test_identical_and_one_step_pass(tmp_path, base):
    raw, img = base
    ref = _side(tmp_path / "ref", raw, img, "x86_64")
    same = _side(tmp_path / "same", raw, img, "aarch64")
    ok, lines = arm64_compare.compare(Path("m.tflite"), ref, same, 99.9)
    assert ok and "identical 100.0000%" in lines[3] and "identical" in lines[4] and lines[-1].startswith("agreement: PASS")
    bumped = raw.copy()
    bumped[0, 0, 0, :] += 1  # one int8 step on a few values
    img2 = img.copy()
    img2[0, 0, 0] += 1
    ok, lines = arm64_compare.compare(Path("m.tflite"), ref, _side(tmp_path / "one", bumped, img2, "aarch64"), 99.9)
    assert ok and "max difference 1 step(s)" in lines[3] and "PSNR" in lines[4]


def test_large_differences_fail_unless_not_gating(tmp_path, base, capsys):
    raw, img = base
    ref = _side(tmp_path / "ref", raw, img, "x86_64")
    far = raw.copy()
    far[0] = np.clip(far[0].astype(int) + 3, -128, 127).astype(np.int8)  # half the values 3 steps off
    cand = _side(tmp_path / "far", far, img, "aarch64")
    ok, lines = arm64_compare.compare(Path("m.tflite"), ref, cand, 99.9)
    assert not ok and lines[-1].startswith("agreement: FAIL:")
    args = ["compare", "--model", "m.tflite", "--reference", str(ref), "--candidate", str(cand)]
    assert arm64_compare.main(args) == 1
    assert arm64_compare.main(args + ["--no-gate"]) == 0
    assert "FAIL (not gating)" in capsys.readouterr().out


def test_missing_or_mismatched_images_fail(tmp_path, base):
    raw, img = base
    ref = _side(tmp_path / "ref", raw, img, "x86_64")
    cand = _side(tmp_path / "cand", raw, img[:8], "aarch64")
    ok, lines = arm64_compare.compare(Path("m.tflite"), ref, cand, 99.9)
    assert not ok and any(line.startswith("problem: a_restored.png") for line in lines)


def test_inputs_and_probe_on_this_machine(tmp_path, int8_model):
    """The helper's own steps run here as on the board: lossless inputs, then raw int8 outputs of fixed tiles."""
    files = arm64_compare.make_inputs(ROOT / "edge_runtime" / "samples" / "sample_noisy.png", tmp_path / "in")
    assert [f.name for f in files] == ["sample_noisy.png", "sample_odd_crop.png", "sample_gray.png"]
    assert Image.open(files[2]).mode == "L" and Image.open(files[1]).size == (231, 179)
    info = arm64_compare.probe(int8_model, tmp_path / "raw.npz", tmp_path / "in", threads=1)
    data = np.load(tmp_path / "raw.npz")
    assert data["raw"].shape == (info["tiles"], 32, 32, 3) and data["raw"].dtype == np.int8
    assert info["tiles"] == 3 * 2 + arm64_compare.RANDOM_TILES
