"""Where the time goes in a TFLite model and around it: MACs per op, per-op timings, tile overheads.

Used by `python -m edge_runtime.bench`; every heavy import is inside a function.

* `graph_ops()` lists the ops the interpreter holds, with their MACs (counted from tensor shapes)
  and whether XNNPACK took them (`delegated`): an op left outside a delegate partition runs on
  TFLite's built-in kernels and splits the graph.
* `op_profile()` times every op on its own. The Python interpreter API has no op profiler, so
  each op is cut out of the flatbuffer into a one-op model (same tensors, scales and options;
  its non-constant inputs become the model inputs) and that model is timed through the same
  interpreter and threads. Times include one `invoke()` call overhead per op (a few
  microseconds), and ops fused inside one XNNPACK partition may be a little faster together.
* `tile_breakdown()` splits the time per tile of `RestorationModel.restore()` into the native
  `invoke()`, the backend's Python I/O (quantize, set/get tensor, dequantize) and the tiler's
  Python work (gather, blend, accumulate, convert), the Python parts measured with a no-op
  `invoke()`.
* `python_profile()` is cProfile over one `restore()`.
"""

from __future__ import annotations

import cProfile
import importlib
import io
import pstats
import time
from typing import Any

import numpy as np

#: Ops whose MACs are counted; everything else (adds, activations, pads, resizes) counts 0.
MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


def op_macs(op: str, inputs: list[tuple[int, ...]], outputs: list[tuple[int, ...]]) -> int:
    """MACs of one TFLite op from its input/output shapes (0 for ops without multiply-accumulates).

    CONV_2D filter is [O, KH, KW, I]; DEPTHWISE_CONV_2D filter [1, KH, KW, O]; FULLY_CONNECTED
    weights [O, I]; TRANSPOSE_CONV inputs are (output_shape, weights [O, KH, KW, I], input).
    """
    if not outputs or op not in MAC_OPS:
        return 0
    out = int(np.prod(outputs[0])) if outputs[0] else 0
    try:
        if op == "CONV_2D":
            _, kh, kw, cin = inputs[1]
            return out * kh * kw * cin
        if op == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = inputs[1]
            return out * kh * kw
        if op == "FULLY_CONNECTED":
            return out * int(inputs[1][-1])
        if op == "TRANSPOSE_CONV":
            cout, kh, kw, _ = inputs[1]
            return int(np.prod(inputs[2])) * kh * kw * cout
    except (IndexError, ValueError):
        return 0
    return 0


def graph_ops(interpreter: Any) -> list[dict]:
    """The model's own ops (not the DELEGATE nodes) with shapes, MACs and `delegated`.

    Uses the interpreter's op/tensor details, which ai_edge_litert, tflite_runtime and TensorFlow
    all provide (a private but long-stable method). Returns [] if they are unavailable.
    """
    try:
        ops = interpreter._get_ops_details()
        shapes = {t["index"]: tuple(int(s) for s in t["shape"]) for t in interpreter.get_tensor_details()}
    except Exception:  # noqa: BLE001 - a missing private API only disables this report
        return []
    delegated = _delegated_ops(ops)
    result = []
    for o in (o for o in ops if o["op_name"] != "DELEGATE"):
        ins = [shapes.get(int(i), ()) for i in o["inputs"] if i >= 0]
        outs = [shapes.get(int(i), ()) for i in o["outputs"] if i >= 0]
        result.append({
            "index": int(o["index"]),
            "op": o["op_name"],
            "inputs": [list(s) for s in ins],
            "outputs": [list(s) for s in outs],
            "macs": op_macs(o["op_name"], ins, outs),
            "delegated": delegated.get(int(o["index"])),
        })
    return result


def _delegated_ops(ops: list[dict]) -> dict[int, bool | None]:
    """Which plain ops a delegate took, from the DELEGATE nodes' boundary tensors.

    Each tensor has one producer. An op whose output a DELEGATE node produces is inside a
    partition; one whose output a DELEGATE node consumes (but does not produce) is outside. Any
    other output is either internal to a partition or passed between non-delegated ops, and its
    producer is then classified like the ops that consume it (graph outputs with no consumer
    were not produced by a partition). None where no delegate exists.
    """
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    plain = [o for o in ops if o["op_name"] != "DELEGATE"]
    if not delegates:
        return {int(o["index"]): None for o in plain}
    d_out = {int(t) for d in delegates for t in d["outputs"]}
    d_in = {int(t) for d in delegates for t in d["inputs"]}
    consumers: dict[int, list[int]] = {}
    for o in plain:
        for t in o["inputs"]:
            consumers.setdefault(int(t), []).append(int(o["index"]))
    result: dict[int, bool | None] = {}
    for o in reversed(plain):  # consumers come after producers in a TFLite graph
        outs = [int(t) for t in o["outputs"]]
        if any(t in d_out for t in outs):
            result[int(o["index"])] = True
        elif any(t in d_in for t in outs):
            result[int(o["index"])] = False
        else:
            votes = [result.get(c) for t in outs for c in consumers.get(t, [])]
            result[int(o["index"])] = bool(votes) and all(v is True for v in votes)
    return result


def delegate_partitions(interpreter: Any) -> int:
    """How many delegate (XNNPACK) partitions the graph was split into (0 if unknown)."""
    try:
        return sum(o["op_name"] == "DELEGATE" for o in interpreter._get_ops_details())
    except Exception:  # noqa: BLE001
        return 0


def _flatbuffer_utils():
    """The flatbuffer helpers of ai_edge_litert or TensorFlow, or None."""
    try:
        from ai_edge_litert.tools import flatbuffer_utils  # type: ignore[import-not-found]

        return flatbuffer_utils
    except ImportError:
        pass
    try:  # by name: the runtime sources carry no tensorflow import statement
        return importlib.import_module("tensorflow.lite.tools.flatbuffer_utils")
    except ImportError:
        return None


def single_op_models(data: bytes) -> list[tuple[int, str, bytes]]:
    """Every op of subgraph 0 as its own model: [(op position, op name, flatbuffer bytes)].

    The op keeps its tensors (shapes, quantization) and options; its inputs that have no constant
    buffer become the model inputs, its outputs the model outputs. Raises ImportError when no
    flatbuffer helper (ai_edge_litert.tools or tensorflow.lite.tools) is installed.
    """
    fbu = _flatbuffer_utils()
    if fbu is None:
        raise ImportError("per-op profiling needs ai_edge_litert.tools or tensorflow.lite.tools")
    model = fbu.read_model_from_bytearray(bytearray(data))
    sg = model.subgraphs[0]
    ops = list(sg.operators)
    model.signatureDefs = []

    def constant(t: int) -> bool:
        buf = model.buffers[sg.tensors[t].buffer]
        return buf.data is not None and len(buf.data) > 0

    out = []
    for pos, op in enumerate(ops):
        ins: list[int] = []
        for t in op.inputs:
            if t >= 0 and not constant(t) and t not in ins:
                ins.append(int(t))
        sg.operators = [op]
        sg.inputs = ins
        sg.outputs = [int(t) for t in op.outputs]
        out.append((pos, fbu.opcode_to_name(model, op.opcodeIndex) or "?", bytes(fbu.convert_object_to_bytearray(model))))
    return out


def _random_input(det: dict, rng: np.random.Generator) -> np.ndarray:
    dt = np.dtype(det["dtype"])
    shape = tuple(int(s) for s in det["shape"])
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, shape, dtype=dt, endpoint=True)
    return rng.random(shape, dtype=np.float32).astype(dt)


def time_invokes(interpreter: Any, repeats: int, warmup: int = 2) -> list[float]:
    """Seconds per `invoke()` for `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - t0)
    return times


def op_profile(data: bytes, threads: int, repeats: int = 10) -> dict:
    """Per-op time (median of `repeats` invokes of the op on its own) and MACs.

    Returns {"ops": [{position, op, ms, macs, gmacs_per_s, delegated}], "by_type": {...},
    "sum_ms": total}. Raises ImportError without a flatbuffer helper.
    """
    from .backends import tflite_interpreter_module

    mod = tflite_interpreter_module()
    rng = np.random.default_rng(0)
    rows = []
    for pos, name, blob in single_op_models(data):
        interp = mod.Interpreter(model_content=blob, num_threads=threads)
        interp.allocate_tensors()
        for det in interp.get_input_details():
            interp.set_tensor(det["index"], _random_input(det, rng))
        ops = graph_ops(interp)
        macs = ops[0]["macs"] if ops else 0
        ms = float(np.median(time_invokes(interp, repeats))) * 1e3
        rows.append({
            "position": pos,
            "op": name,
            "ms": ms,
            "macs": macs,
            "gmacs_per_s": (macs / ms / 1e6) if ms > 0 and macs else None,
            "delegated": delegate_partitions(interp) > 0,
            "output": ops[0]["outputs"][0] if ops and ops[0]["outputs"] else [],
        })
        del interp
    total = sum(r["ms"] for r in rows) or 1.0
    by_type: dict[str, dict] = {}
    for r in rows:
        key = r["op"] + ("" if r["delegated"] else " (not XNNPACK)")
        t = by_type.setdefault(key, {"count": 0, "ms": 0.0, "macs": 0})
        t["count"] += 1
        t["ms"] += r["ms"]
        t["macs"] += r["macs"]
    for t in by_type.values():
        t["share"] = t["ms"] / total
        t["gmacs_per_s"] = (t["macs"] / t["ms"] / 1e6) if t["macs"] and t["ms"] > 0 else None
    return {"ops": rows, "by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1]["ms"])), "sum_ms": total}


class _NoInvoke:
    """An interpreter stand-in whose invoke() does nothing; everything else is the real one."""

    def __init__(self, interpreter: Any) -> None:
        self._interpreter = interpreter

    def invoke(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._interpreter, name)


def tile_breakdown(model: Any, image: np.ndarray, repeats: int = 3) -> dict:
    """Per-tile milliseconds of restore(): native invoke(), backend Python I/O, tiler Python.

    `model` is a RestorationModel with a TFLite backend. The Python costs are measured directly,
    not by subtraction: restore() runs with the interpreter's invoke() replaced by a no-op (the
    real set_tensor/get_tensor, quantize/dequantize and tiler work all run), so `RunStats` time
    is the backend's Python I/O and the rest is the tiler's. `invoke()` is timed bare, as many
    calls as restore() runs tiles. Rounds alternate the two; the best of each is kept.
    """
    backend = model.backend
    interp = getattr(backend, "interpreter", None)
    if interp is None:
        raise ValueError("tile_breakdown needs a TFLite backend")
    best = {"python": float("inf"), "backend": float("inf"), "invoke": float("inf")}
    tiles = model.tiler(*image.shape[:2], image.shape[2]).tiles
    for _ in range(repeats):
        backend.interpreter = _NoInvoke(interp)
        try:
            model.stats.tiles, model.stats.inference_seconds = 0, 0.0
            t0 = time.perf_counter()
            model.restore(image)
            best["python"] = min(best["python"], (time.perf_counter() - t0) / tiles)
            best["backend"] = min(best["backend"], model.stats.inference_seconds / tiles)
        finally:
            backend.interpreter = interp
        t0 = time.perf_counter()
        for _ in range(tiles):
            interp.invoke()
        best["invoke"] = min(best["invoke"], (time.perf_counter() - t0) / tiles)
    py, be, inv = best["python"] * 1e3, best["backend"] * 1e3, best["invoke"] * 1e3
    return {
        "tiles": tiles,
        "invoke_ms_per_tile": inv,
        "backend_python_ms_per_tile": be,
        "tiler_python_ms_per_tile": max(py - be, 0.0),
        "python_ms_per_tile": py,
        "total_ms_per_tile": py + inv,
        "python_share": py / (py + inv),
    }


def python_profile(model: Any, image: np.ndarray, top: int = 12) -> list[dict]:
    """cProfile over one restore(): the `top` functions by own time."""
    prof = cProfile.Profile()
    prof.enable()
    model.restore(image)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    total = sum(v[2] for v in stats.stats.values()) or 1.0  # type: ignore[attr-defined]
    for (filename, line, func), (cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        short = filename.rsplit("/", 2)[-2:] if "/" in filename else [filename]
        rows.append({
            "function": f"{'/'.join(short)}:{line}({func})" if line else func,
            "calls": int(nc),
            "own_ms": tt * 1e3,
            "cumulative_ms": ct * 1e3,
            "own_share": tt / total,
        })
    rows.sort(key=lambda r: -r["own_ms"])
    return rows[:top]

