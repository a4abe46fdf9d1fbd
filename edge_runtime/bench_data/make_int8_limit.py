"""Build the fully-int8 convolution models that measure the machine's INT8 limit (roofline).

    .venv/bin/python edge_runtime/bench_data/make_int8_limit.py     # rewrite the committed files

`python -m edge_runtime.bench` runs these through the same TFLite interpreter (XNNPACK) and
thread count as the denoiser and reports int8 MAC/s. The files are committed (each < 200 KB) so
that boards without TensorFlow measure exactly the same graphs; this script (TensorFlow needed)
is what made them, and the benchmark calls `build()` itself only when a file is missing or
`--rebuild-limit-models` is given.

Every model takes a 1x128x128x128 int8 tensor (NHWC) and is one layer (with bias):

    int8_conv3x3_128.tflite    3x3 conv, 128 -> 128 channels, 'same'  (2.42 GMAC per run)
    int8_conv1x1_128.tflite    1x1 conv, 128 -> 128 channels          (0.27 GMAC per run)
    int8_dwconv3x3_128.tflite  3x3 depthwise conv, 128 channels       (0.019 GMAC per run)

The dense 3x3 conv is the machine's limit (the highest arithmetic intensity); the 1x1 and
depthwise ones are the ceilings of the two layer types a MobileNet-style denoiser is made of.
Weights are seeded random normals, calibrated with seeded random inputs; values do not change
the speed of an int8 kernel.
"""

from __future__ import annotations

import importlib

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIDE = 128
CHANNELS = 128
SEED = 20240611

#: name -> (kind, kernel size); MACs per run are computed by `macs()`.
LIMIT_MODELS: dict[str, tuple[str, int]] = {
    "int8_conv3x3_128.tflite": ("conv", 3),
    "int8_conv1x1_128.tflite": ("conv", 1),
    "int8_dwconv3x3_128.tflite": ("depthwise", 3),
}
#: The file whose MAC/s is "the INT8 limit".
LIMIT_MODEL = "int8_conv3x3_128.tflite"


def macs(name: str) -> int:
    """Multiply-accumulates of one run of a limit model."""
    kind, k = LIMIT_MODELS[name]
    per_pixel = k * k * (CHANNELS if kind == "conv" else 1) * CHANNELS
    return SIDE * SIDE * per_pixel


def build_one(name: str) -> bytes:
    """The fully-int8 (int8 I/O) TFLite flatbuffer of one limit model (needs TensorFlow)."""
    tf = importlib.import_module("tensorflow")  # heavy: only here, imported by name like the rest of edge_runtime

    kind, k = LIMIT_MODELS[name]
    rng = np.random.default_rng(SEED)
    inp = tf.keras.Input(shape=(SIDE, SIDE, CHANNELS), batch_size=1, dtype=tf.float32)
    if kind == "conv":
        layer = tf.keras.layers.Conv2D(CHANNELS, k, padding="same")
        out = layer(inp)
        layer.set_weights([
            rng.normal(0, 1.0 / np.sqrt(k * k * CHANNELS), (k, k, CHANNELS, CHANNELS)).astype(np.float32),
            rng.normal(0, 0.01, (CHANNELS,)).astype(np.float32),
        ])
    else:
        layer = tf.keras.layers.DepthwiseConv2D(k, padding="same")
        out = layer(inp)
        layer.set_weights([
            rng.normal(0, 1.0 / k, (k, k, CHANNELS, 1)).astype(np.float32),
            rng.normal(0, 0.01, (CHANNELS,)).astype(np.float32),
        ])
    model = tf.keras.Model(inp, out)

    def representative():
        calib = np.random.default_rng(SEED + 1)
        for _ in range(4):
            yield [calib.random((1, SIDE, SIDE, CHANNELS), dtype=np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def build(folder: str | Path = HERE, names: list[str] | None = None) -> list[Path]:
    """Write the limit models into `folder` (all of them by default); returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or list(LIMIT_MODELS):
        path = folder / name
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(build_one(name))
        tmp.replace(path)
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - a maintenance script
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    for p in build(target):
        print(f"{p}: {p.stat().st_size / 1024:.1f} KiB, {macs(p.name) / 1e9:.3f} GMAC per run")
