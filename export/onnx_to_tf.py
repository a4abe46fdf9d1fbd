"""Translate an edge-restore ONNX graph (float or QDQ) into a TensorFlow function in NHWC.

Why a small translator of our own: onnx2tf re-calibrates QDQ graphs and pins an old stack. Our
graphs use a handful of ops, and TFLiteConverter turns `fake_quant_with_min_max_vars(_per_channel)`
into a fully-int8 model that keeps exactly those ranges. So every activation Q/DQ pair becomes a
`fake_quant_with_min_max_vars` with the same scale and zero point, and every weight Q/DQ pair a
per-channel narrow-range fake quant on the constant filter: the QAT scales survive conversion
instead of being re-estimated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import onnx
from onnx import numpy_helper

QMIN, QMAX = -128, 127


class UnsupportedGraphError(ValueError):
    """The ONNX graph uses an op or attribute this translator does not handle."""


@dataclass
class QuantizedWeight:
    """A constant weight with its per-output-channel symmetric scale (from a Q/DQ pair)."""

    value: np.ndarray
    scale: np.ndarray


@dataclass
class PendingQuant:
    """Output of an activation QuantizeLinear, waiting for its DequantizeLinear."""

    tensor: Any
    scale: float
    zero_point: int


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def activation_range(scale: float, zero_point: int) -> tuple[float, float]:
    """The [min, max] a fake_quant node needs to reproduce an int8 scale/zero point exactly."""
    return (QMIN - zero_point) * scale, (QMAX - zero_point) * scale


def _to_nhwc_const(value: np.ndarray) -> np.ndarray:
    return value.transpose(0, 2, 3, 1) if value.ndim == 4 else value


#: How nearest-neighbour upsampling by an integer factor k is written: "concat" (each pixel
#: repeated k times along the columns, then each row k times: RESHAPE and CONCATENATION, the same
#: values, all inside XNNPACK, which has no RESIZE_NEAREST_NEIGHBOR and would split the graph) or
#: "resize" (RESIZE_NEAREST_NEIGHBOR, the upsampling op Coral documents for the Edge TPU).
UPSAMPLE_OPS = ("concat", "resize")
DEFAULT_UPSAMPLE = "concat"


class GraphTranslator:
    """Walks the ONNX nodes in order and emits the equivalent TensorFlow ops (NHWC)."""

    def __init__(self, model: onnx.ModelProto, upsample: str = DEFAULT_UPSAMPLE) -> None:
        import tensorflow as tf

        if upsample not in UPSAMPLE_OPS:
            raise ValueError(f"upsample must be one of {UPSAMPLE_OPS}, got {upsample!r}")
        self.upsample = upsample
        self.tf = tf
        self.graph = model.graph
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.handlers: dict[str, Callable[[onnx.NodeProto, list[Any]], Any]] = {
            "QuantizeLinear": self._quantize, "DequantizeLinear": self._dequantize, "Conv": self._conv,
            "Relu": lambda n, x: tf.nn.relu(x[0]), "HardSwish": lambda n, x: self._hardswish(x[0]),
            "Clip": self._clip, "Add": self._binary(tf.add), "Mul": self._binary(tf.multiply),
            "Sub": self._binary(tf.subtract), "Div": self._binary(tf.divide), "ReduceMean": self._reduce_mean,
            "GlobalAveragePool": lambda n, x: tf.reduce_mean(x[0], axis=[1, 2], keepdims=True),
            "Resize": self._resize, "Identity": lambda n, x: x[0], "Concat": self._concat,
        }

    def __call__(self, x: Any) -> Any:
        env: dict[str, Any] = dict(self.consts)
        env[self.graph.input[0].name] = x
        for node in self.graph.node:
            if node.op_type == "Constant":
                env[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
                continue
            handler = self.handlers.get(node.op_type)
            if handler is None:
                raise UnsupportedGraphError(f"ONNX op {node.op_type} ({node.name}) is not supported by the TFLite translator")
            env[node.output[0]] = handler(node, [env[i] if i else None for i in node.input])
        return env[self.graph.output[0].name]

    # -- quantization -------------------------------------------------------------------------
    def _quantize(self, node: onnx.NodeProto, x: list[Any]) -> Any:
        value, scale, zp = x[0], np.asarray(x[1], np.float64), np.asarray(x[2])
        if isinstance(value, np.ndarray):  # a weight: per-channel symmetric
            if np.any(zp != 0):
                raise UnsupportedGraphError(f"weight {node.input[0]} has a non-zero zero point")
            axis = _attrs(node).get("axis", 1)
            if scale.ndim and axis != 0:
                raise UnsupportedGraphError(f"weight {node.input[0]} is quantized on axis {axis}, expected 0")
            return QuantizedWeight(value, np.broadcast_to(scale, value.shape[:1]).astype(np.float64))
        if scale.ndim:
            raise UnsupportedGraphError(f"activation {node.input[0]} must be per-tensor quantized")
        return PendingQuant(value, float(scale), int(zp))

    def _dequantize(self, node: onnx.NodeProto, x: list[Any]) -> Any:
        q = x[0]
        if isinstance(q, QuantizedWeight):
            return q
        if not isinstance(q, PendingQuant):
            raise UnsupportedGraphError(f"DequantizeLinear {node.name} does not follow a QuantizeLinear")
        lo, hi = activation_range(q.scale, q.zero_point)
        return self.tf.quantization.fake_quant_with_min_max_vars(q.tensor, min=lo, max=hi, num_bits=8, narrow_range=False)

    def _filter(self, weight: Any, layout: tuple[int, ...]) -> Any:
        """Constant filter in TF layout; fake-quantized per output channel (last axis) if QDQ."""
        tf = self.tf
        if isinstance(weight, QuantizedWeight):
            w = weight.value.transpose(layout)
            rng = (WEIGHT_QMAX * weight.scale).astype(np.float32)
            return tf.quantization.fake_quant_with_min_max_vars_per_channel(
                tf.constant(w.astype(np.float32)), min=-rng, max=rng, num_bits=8, narrow_range=True)
        return tf.constant(np.asarray(weight, np.float32).transpose(layout))

    # -- ops ------------------------------------------------------------------------------------
    def _conv(self, node: onnx.NodeProto, x: list[Any]) -> Any:
        tf = self.tf
        a = _attrs(node)
        inp, weight, bias = x[0], x[1], x[2] if len(x) > 2 else None
        w_shape = (weight.value if isinstance(weight, QuantizedWeight) else weight).shape
        out_ch, in_per_group, kh, kw = w_shape
        group = a.get("group", 1)
        strides = a.get("strides", [1, 1])
        pads = a.get("pads", [0, 0, 0, 0])
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise UnsupportedGraphError("dilated convolutions are not supported")
        if pads == [kh // 2, kw // 2, kh // 2, kw // 2] and strides == [1, 1] and kh % 2 and kw % 2:
            padding = "SAME"
        else:
            if any(pads):
                inp = tf.pad(inp, [[0, 0], [pads[0], pads[2]], [pads[1], pads[3]], [0, 0]])
            padding = "VALID"
        if group == 1:
            y = tf.nn.conv2d(inp, self._filter(weight, (2, 3, 1, 0)), strides=[1, *strides, 1], padding=padding)
        elif in_per_group == 1 and out_ch == group:
            # Depthwise: the filter is [kh, kw, 1, C] so per-channel quantization sits on the last
            # axis; reshaped to TF's [kh, kw, C, 1] depthwise layout.
            filt = tf.reshape(self._filter(weight, (2, 3, 1, 0)), [kh, kw, out_ch, 1])
            y = tf.nn.depthwise_conv2d(inp, filt, strides=[1, *strides, 1], padding=padding)
        else:
            raise UnsupportedGraphError(f"grouped convolution with group={group} is not supported")
        return y if bias is None else tf.nn.bias_add(y, tf.constant(np.asarray(bias, np.float32)))

    def _hardswish(self, x: Any) -> Any:
        tf = self.tf
        return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)

    def _clip(self, node: onnx.NodeProto, x: list[Any]) -> Any:
        lo = float(x[1]) if len(x) > 1 and x[1] is not None else _attrs(node).get("min", -np.inf)
        hi = float(x[2]) if len(x) > 2 and x[2] is not None else _attrs(node).get("max", np.inf)
        if lo == 0.0 and hi == 6.0:
            return self.tf.nn.relu6(x[0])
        if lo == 0.0 and hi == np.inf:
            return self.tf.nn.relu(x[0])
        return self.tf.clip_by_value(x[0], lo, hi)

    def _binary(self, fn: Callable[[Any, Any], Any]) -> Callable[[onnx.NodeProto, list[Any]], Any]:
        def handler(node: onnx.NodeProto, x: list[Any]) -> Any:
            a, b = (_to_nhwc_const(v).astype(np.float32) if isinstance(v, np.ndarray) else v for v in x[:2])
            return fn(a, b)

        return handler

    def _reduce_mean(self, node: onnx.NodeProto, x: list[Any]) -> Any:
        axes = _attrs(node).get("axes")
        if axes is None and len(x) > 1 and x[1] is not None:
            axes = list(np.asarray(x[1]))
        if sorted(int(a) % 4 for a in axes) != [2, 3]:
            raise UnsupportedGraphError(f"ReduceMean over axes {axes} is not supported (only spatial)")
        return self.tf.reduce_mean(x[0], axis=[1, 2], keepdims=bool(_attrs(node).get("keepdims", 1)))

    def _resize(self, node: onnx.NodeProto, x: list[Any]) -> Any:
        a = _attrs(node)
        mode = a.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "nearest":
            raise UnsupportedGraphError(f"Resize mode {mode} is not supported (only nearest)")
        scales = x[2] if len(x) > 2 and x[2] is not None and np.size(x[2]) else None
        h, w = x[0].shape[1], x[0].shape[2]
        if scales is not None:
            size = [int(h * scales[2]), int(w * scales[3])]
        else:
            size = [int(v) for v in np.asarray(x[3])[2:]]
        if self.upsample == "concat":
            k, c = size[0] // h, x[0].shape[3]
            if size != [k * h, k * w] or k < 2:
                raise UnsupportedGraphError(f"Resize {h}x{w} -> {size[0]}x{size[1]} is not one integer factor on both "
                                            "axes: export with upsample 'resize'")
            tf = self.tf  # tensors of rank 3 at most, as the Edge TPU's list also allows
            cols = tf.concat([tf.reshape(x[0], [h * w, 1, c])] * k, axis=1)  # pixel (i, j) k times
            rows = tf.concat([tf.reshape(cols, [h, 1, k * w * c])] * k, axis=1)  # row i k times
            return tf.reshape(rows, [1, k * h, k * w, c])
        # Asymmetric nearest with integer factors equals torch's 'nearest' (floor(dst / factor)).
        return self.tf.raw_ops.ResizeNearestNeighbor(images=x[0], size=size, align_corners=False, half_pixel_centers=False)

    def _concat(self, node: onnx.NodeProto, x: list[Any]) -> Any:
        axis = {1: 3, 2: 1, 3: 2}.get(_attrs(node)["axis"] % 4)
        if axis is None:
            raise UnsupportedGraphError("Concat over the batch axis is not supported")
        return self.tf.concat(x, axis=axis)


WEIGHT_QMAX = 127


def tf_function_from_onnx(model: onnx.ModelProto, tile: int, channels: int, upsample: str = DEFAULT_UPSAMPLE) -> Any:
    """A concrete tf.function taking a 1xTxTxC float32 NHWC tensor, equivalent to the ONNX graph
    (`upsample`: see UPSAMPLE_OPS)."""
    import tensorflow as tf

    translate = GraphTranslator(model, upsample)

    @tf.function(input_signature=[tf.TensorSpec([1, tile, tile, channels], tf.float32, name="input")], autograph=False)
    def restore(x: Any) -> Any:
        return {"output": translate(x)}

    return restore.get_concrete_function()
