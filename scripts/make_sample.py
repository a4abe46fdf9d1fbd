"""Regenerate edge_runtime/samples/sample_noisy.png, the README demo image.

    .venv/bin/python scripts/make_sample.py

skimage's astronaut (public domain, NASA), downscaled to 256x256, plus Gaussian noise of
sigma 25 (on the 0-255 scale) with a fixed seed, clipped and rounded to uint8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

OUT = Path(__file__).resolve().parent.parent / "edge_runtime" / "samples" / "sample_noisy.png"
SIZE = 256
SIGMA = 25.0
SEED = 0


def make(out: Path = OUT) -> Path:
    clean = Image.fromarray(data.astronaut()).resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    rng = np.random.default_rng(SEED)
    noisy = np.asarray(clean, np.float64) + rng.normal(0.0, SIGMA, size=(SIZE, SIZE, 3))
    pixels = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(out, optimize=True)
    return out


if __name__ == "__main__":
    path = make()
    print(f"{path}  {path.stat().st_size} bytes")
