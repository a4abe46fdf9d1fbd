"""ONNX to TFLite: float, FP16, fully-int8 keeping the QAT scales, and a PTQ baseline.

One function per output format. Every file gets the contract stamped into its flatbuffer.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import onnx

from edge_runtime.contract import ModelContract

from .metadata import stamp_tflite
from .onnx_to_tf import DEFAULT_UPSAMPLE, tf_function_from_onnx
from .quiet import console, held_stderr
from .tflite_rewrite import split_hard_swish

log = logging.getLogger(__name__)
IO_DTYPES = ("int8", "uint8", "float32")


class ConversionError(RuntimeError):
    """The converter produced something other than what was asked for."""


def _converter(onnx_model: onnx.ModelProto, contract: ModelContract, workdir: str, upsample: str):
    import tensorflow as tf

    fn = tf_function_from_onnx(onnx_model, contract.tile_size, contract.channels, upsample)
    module = tf.Module()
    module.restore = fn
    # Through a SavedModel: that is the path on which TFLiteConverter recognises fake-quant
    # graphs as quantization-aware trained and keeps their ranges.
    tf.saved_model.save(module, workdir, signatures={"serving_default": fn})
    return tf.lite.TFLiteConverter.from_saved_model(workdir)


def _convert(onnx_model: onnx.ModelProto, contract: ModelContract, configure: Callable, upsample: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="edge-restore-tf-") as workdir, held_stderr():
        converter = _converter(onnx_model, contract, workdir, upsample)
        configure(converter)
        return bytes(converter.convert())


def _set_io(converter, io_dtype: str) -> None:
    import tensorflow as tf

    if io_dtype not in IO_DTYPES:
        raise ValueError(f"io dtype must be one of {IO_DTYPES}, got {io_dtype!r}")
    if io_dtype != "float32":
        converter.inference_input_type = getattr(tf, io_dtype)
        converter.inference_output_type = getattr(tf, io_dtype)


def tflite_float(onnx_model: onnx.ModelProto, contract: ModelContract, upsample: str = DEFAULT_UPSAMPLE) -> bytes:
    """Plain float32 TFLite model (`upsample`: how nearest x2 is written, see onnx_to_tf.UPSAMPLE_OPS)."""
    return stamp_tflite(_convert(onnx_model, contract, lambda c: None, upsample), contract.replace(quantization="float"))


def tflite_fp16(onnx_model: onnx.ModelProto, contract: ModelContract, upsample: str = DEFAULT_UPSAMPLE) -> bytes:
    """Float16 weights, float32 compute/I-O (halves the file; GPU delegates run it in fp16)."""
    import tensorflow as tf

    def configure(c) -> None:
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.target_spec.supported_types = [tf.float16]

    return stamp_tflite(_convert(onnx_model, contract, configure, upsample), contract.replace(quantization="fp16"))


def tflite_int8_from_qdq(qdq_model: onnx.ModelProto, contract: ModelContract, io_dtype: str = "int8",
                         upsample: str = DEFAULT_UPSAMPLE) -> bytes:
    """Fully-integer model whose scales are the QDQ graph's (QAT) scales; no re-calibration."""
    import tensorflow as tf

    def configure(c) -> None:
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        _set_io(c, io_dtype)

    data, _ = split_hard_swish(_convert(qdq_model, contract, configure, upsample))
    check_fully_integer(data, io_dtype)
    return stamp_tflite(data, contract.replace(quantization="int8-qat"))


def tflite_int8_ptq(float_model: onnx.ModelProto, contract: ModelContract, representative: Iterable[np.ndarray],
                    io_dtype: str = "int8", upsample: str = DEFAULT_UPSAMPLE) -> bytes:
    """Post-training quantization from the float graph, calibrated on `representative` NHWC tiles."""
    import tensorflow as tf
    from tqdm import tqdm

    samples = [np.asarray(s, np.float32) for s in representative]

    def calibration():
        # The converter runs the float model on every tile (minutes on a board-size model): a bar,
        # on a terminal only (disable=None is tqdm's TTY check).
        bar = tqdm(samples, desc="ptq calibration", unit="tile", dynamic_ncols=True, file=console(), disable=None)
        for s in bar:
            yield [s]

    def configure(c) -> None:
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = calibration
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        _set_io(c, io_dtype)

    data, _ = split_hard_swish(_convert(float_model, contract, configure, upsample))
    check_fully_integer(data, io_dtype)
    return stamp_tflite(data, contract.replace(quantization="int8-ptq"))


def check_fully_integer(data: bytes, io_dtype: str) -> None:
    """Raise ConversionError if any non-bias tensor is float (a 'float island') or I/O is wrong."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    floats = [d["name"] for d in interp.get_tensor_details() if d["dtype"] == np.float32]
    io = [d["dtype"].__name__ for d in interp.get_input_details() + interp.get_output_details()]
    if io_dtype != "float32":
        if floats:
            raise ConversionError(f"int8 model still has float tensors: {floats[:5]}")
        if any(t != io_dtype for t in io):
            raise ConversionError(f"model I/O is {io}, expected {io_dtype}")


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write a model file, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    log.info("wrote %s (%.1f KB)", path, len(data) / 1024)
    return path
