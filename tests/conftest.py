"""Shared fixtures for the runtime tests.

The tiny models live in tests/data/ (committed; built by tests/make_fixtures.py). If any is
missing, the session fixture rebuilds them, which needs TensorFlow and onnx; the runtime tests
themselves need neither.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
DATA = TESTS / "data"
FIXTURE_FILES = (
    "float32.tflite", "int8.tflite", "uint8.tflite", "wrong_shape.tflite", "no_contract.tflite",
    "float_dynamic.onnx", "float_static.onnx", "weights.npz",
)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """Folder with the fixture models, rebuilt with TensorFlow only if a file is missing."""
    if not all((DATA / name).is_file() for name in FIXTURE_FILES):
        pytest.importorskip("tensorflow")
        pytest.importorskip("onnx")
        sys.path.insert(0, str(TESTS))
        import make_fixtures

        make_fixtures.build(DATA)
    return DATA


@pytest.fixture(scope="session")
def float_model(model_dir: Path) -> Path:
    return model_dir / "float32.tflite"


@pytest.fixture(scope="session")
def int8_model(model_dir: Path) -> Path:
    return model_dir / "int8.tflite"


@pytest.fixture(scope="session")
def conv_weights(model_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(model_dir / "weights.npz") as data:
        return data["kernel"], data["bias"]


def reference_restore(image: np.ndarray, kernel: np.ndarray, bias: np.ndarray, tile: int = 32) -> np.ndarray:
    """What every fixture model (x + conv3x3(x), clipped), run through the tiler with `tile`,
    computes on a whole image.

    image: (H, W, 3) float in [0, 1]. Along an axis at least a tile long the model meets the image
    border with its own zero padding (the tiles lie inside the image); along a shorter axis the
    tile's remainder past the image's far end is reflected ('edge' for a 1-pixel axis).
    """
    pad = image.astype(np.float64)
    for axis in (0, 1):
        n = image.shape[axis]
        before = [(0, 0)] * 3
        before[axis] = (1, 0)
        after = [(0, 0)] * 3
        after[axis] = (0, 1)
        pad = np.pad(pad, before, mode="constant")
        pad = np.pad(pad, after, mode="constant" if n >= tile else "reflect" if n > 1 else "edge")
    h, w = image.shape[:2]
    out = np.zeros((h, w, kernel.shape[3]), np.float64) + bias
    for dy in range(3):
        for dx in range(3):
            out += pad[dy : dy + h, dx : dx + w] @ kernel[dy, dx].astype(np.float64)
    return np.clip(image + out, 0.0, 1.0)


@pytest.fixture
def reference(conv_weights):
    kernel, bias = conv_weights
    return lambda image: reference_restore(image, kernel, bias)
