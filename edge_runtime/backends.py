"""Inference backends behind one small interface.

A backend runs one fixed-size tile:

    backend.run(tile)   # (1, T, T, C) float32 NHWC in [0, 1]  ->  (1, T, T, C) float32 in [0, 1]

with `backend.tile_size` (T), `backend.channels` (C) and `backend.contract`. The returned array is a
buffer the backend reuses on the next call: copy it if you keep it.

Backends: TFLite on the CPU (XNNPACK, `threads`), TFLite with the Coral Edge TPU delegate, and
ONNX Runtime for .onnx files. The TFLite interpreter is chosen in exactly one place,
`tflite_interpreter_module()`; onnxruntime is imported only when an .onnx model is loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import os
import platform
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from .contract import METADATA_KEY, ContractError, ModelContract
from .errors import DeviceError, ModelError
from .onnx_validate import OnnxFormatError, UnsafeExternalData, check_external_data, check_operators
from .tflite_metadata import TFLITE_IDENTIFIER, FlatbufferError, read_contract
from .tflite_validate import ModelSummary, validate_tflite
from .tiling import pixels_to_unit

log = logging.getLogger("edge_runtime")

INSTALL_HINT = 'pip install "edge-restore[edge]"'
DEVICES = ("cpu", "edgetpu")
_EDGETPU_OP = b"edgetpu-custom-op"
_SUPPORTED_DTYPES = (np.float32, np.int8, np.uint8)
#: Largest model file read into memory (the shipped models are a few MB; ONNX weights kept as
#: external data are not counted). Checked, with the file's identifier, before the bytes are read.
MAX_MODEL_BYTES = 1 << 30
#: Interpreter threads are capped at this many per CPU core (more only adds contention: 500
#: ONNX threads on 2 cores took over 120 s for a tiny image); --threads above MAX_THREADS is refused.
MAX_THREADS_PER_CORE = 4
MAX_THREADS = 1024


def effective_threads(threads: int | None) -> int:
    """The interpreter thread count for a requested `threads` (None: all cores), capped per core."""
    cores = os.cpu_count() or 1
    if threads is None:
        return cores
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= MAX_THREADS:
        raise ModelError(f"threads must be an integer in [1, {MAX_THREADS}], got {threads!r:.40}")
    cap = MAX_THREADS_PER_CORE * cores
    if threads > cap:
        log.warning("%d threads on %d CPU cores: using %d", threads, cores, cap)
        return cap
    return int(threads)


def run_interruptible(run: Callable[[], Any], cancel: Callable[[], None], poll: float = 0.05) -> Any:
    """run() in a worker thread while the main thread waits, so signal handlers still run.

    A native call (onnxruntime's session.run) holds the main thread outside the interpreter:
    SIGINT / SIGTERM handlers would wait for it to return, forever for a model that never ends.
    If the wait is interrupted (KeyboardInterrupt, or the CLI's Interrupted on a second signal),
    cancel() asks the native call to stop and the exception propagates at once.
    """
    if threading.current_thread() is not threading.main_thread():
        return run()  # signals are delivered to the main thread only: nothing to keep responsive
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = run()
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc

    worker = threading.Thread(target=work, name="edge-restore-tile", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(poll)
    except BaseException:
        cancel()
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


def edgetpu_library() -> str:
    """File name of the Edge TPU delegate library on this platform."""
    return {"Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}.get(platform.system(), "libedgetpu.so.1")


def tflite_interpreter_module() -> SimpleNamespace:
    """The one place a TFLite interpreter is chosen: `.Interpreter`, `.load_delegate`, `.name`.

    Preference: ai_edge_litert (LiteRT), then tflite_runtime, then full TensorFlow (lazily, as a
    last resort on a desktop). Raises ModelError naming the pip extra if none is installed.
    """
    try:
        from ai_edge_litert import interpreter as mod  # type: ignore[import-not-found]

        return SimpleNamespace(Interpreter=mod.Interpreter, load_delegate=mod.load_delegate, name="ai_edge_litert")
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as mod  # type: ignore[import-not-found]

        return SimpleNamespace(Interpreter=mod.Interpreter, load_delegate=mod.load_delegate, name="tflite_runtime")
    except ImportError:
        pass
    try:
        tf = importlib.import_module("tensorflow")  # heavy, desktop fallback only, imported by name on purpose

        return SimpleNamespace(
            Interpreter=tf.lite.Interpreter, load_delegate=tf.lite.experimental.load_delegate, name="tensorflow"
        )
    except ImportError:
        pass
    raise ModelError(f"no TFLite interpreter installed; install one with: {INSTALL_HINT}")


def model_kind(path: Path, head: bytes) -> str:
    """'tflite' or 'onnx' from the file's identifier and extension, else ModelError."""
    if len(head) >= 8 and head[4:8] == TFLITE_IDENTIFIER:
        return "tflite"
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if path.suffix.lower() == ".tflite":
        raise ModelError(f"{path} is not a TFLite model (missing 'TFL3' file identifier)")
    raise ModelError(f"{path} is not a TFLite (.tflite) or ONNX (.onnx) model")


class Backend:
    """Common interface; see the module docstring."""

    kind = "?"
    #: True when run() also accepts other H/W (dynamic ONNX); tiles are still the default.
    dynamic = False
    #: True when run_pixels() takes 8-bit pixels directly (the model's input is the pixel grid).
    takes_pixels = False
    #: True when run_pixels() also returns 8-bit pixels (uint8) instead of floats in [0, 1]: the
    #: model's output is the pixel grid too.
    gives_pixels = False

    def __init__(self, path: Path, contract: ModelContract) -> None:
        self.path = path
        self.contract = contract
        self.tile_size = contract.tile_size
        self.channels = contract.channels
        self.io_dtype: np.dtype = np.dtype(np.float32)

    def run(self, tile: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def run_pixels(self, tile: np.ndarray) -> np.ndarray:
        """run() for a (1, T, T, C) uint8 tile of 8-bit pixels, same result as run(tile / 255); when
        `gives_pixels`, the result is uint8 pixels p, and pixels_to_unit(p) is what run() returns."""
        raise NotImplementedError(f"{self.kind} backend does not take 8-bit pixels directly")

    def describe(self) -> str:
        c = self.contract
        return (
            f"{self.path.name}: {self.kind}, task={c.task}, tile={c.tile_size}, overlap={c.overlap}, "
            f"io={self.io_dtype.name}, quantization={c.quantization}"
        )


def _check_dtype(path: Path, what: str, dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in [np.dtype(d) for d in _SUPPORTED_DTYPES]:
        raise ModelError(f"{path.name}: {what} dtype {dt.name} is not supported (float32, int8 or uint8)")
    return dt


class TFLiteBackend(Backend):
    kind = "tflite"

    def __init__(
        self,
        path: Path,
        data: bytes,
        contract: ModelContract,
        threads: int | None = None,
        delegate: Any = None,
    ) -> None:
        super().__init__(path, contract)
        mod = tflite_interpreter_module()
        self.threads = effective_threads(threads)
        self.device = "edgetpu" if delegate is not None else "cpu"
        self.kind = "tflite-edgetpu" if delegate is not None else "tflite"
        delegates = [delegate] if delegate is not None else None
        try:
            with _native_info_silenced():
                self.interpreter = mod.Interpreter(
                    model_content=data, num_threads=self.threads, experimental_delegates=delegates
                )
                self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path.name}: the TFLite interpreter rejected the model ({_first_line(exc)})") from None

        try:
            inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        except (ValueError, RuntimeError) as exc:  # e.g. a tensor name that is not UTF-8
            raise ModelError(f"{path.name}: the TFLite interpreter cannot describe the model ({_first_line(exc)})") from None
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path.name}: expected 1 input and 1 output tensor, got {len(inputs)} and {len(outputs)}")
        inp, out = inputs[0], outputs[0]
        want = [1, contract.tile_size, contract.tile_size, contract.channels]
        for what, det in (("input", inp), ("output", out)):
            shape = [int(s) for s in det["shape"]]
            if shape != want:
                raise ModelError(
                    f"{path.name}: {what} shape {shape} does not match the contract "
                    f"(tile_size {contract.tile_size}, channels {contract.channels}: expected {want} NHWC)"
                )
        self.io_dtype = _check_dtype(path, "input", inp["dtype"])
        self.out_dtype = _check_dtype(path, "output", out["dtype"])
        # Quantization parameters are always read from the model, never assumed.
        self.in_scale, self.in_zero = (float(inp["quantization"][0]), int(inp["quantization"][1]))
        self.out_scale, self.out_zero = (float(out["quantization"][0]), int(out["quantization"][1]))
        for what, dt, scale in (("input", self.io_dtype, self.in_scale), ("output", self.out_dtype, self.out_scale)):
            if dt.kind in "iu" and not scale > 0:
                raise ModelError(f"{path.name}: quantized {what} tensor has no scale")
        self._in_index, self._out_index = inp["index"], out["index"]
        shape = tuple(want)
        self._in_buf = np.zeros(shape, self.io_dtype)
        self._tmp = np.zeros(shape, np.float32)
        self._out_buf = np.zeros(shape, np.float32)
        # An int8 input of scale 1/255 and zero point -128 (uint8: 0) is the 8-bit pixel itself:
        # when quantize(p / 255) == p - 128 (uint8: p) for all 256 values, 8-bit tiles skip the
        # float round trip. Checked on the model's own parameters, never assumed.
        pixel_zero = {"int8": -128, "uint8": 0}.get(self.io_dtype.name)
        if pixel_zero is not None:
            p = np.empty(256, np.float32)
            np.multiply(np.arange(256, dtype=np.uint8), 1.0 / 255, out=p, casting="unsafe")  # as the tiler does
            q = quantize(p, self.in_scale, self.in_zero, np.empty(256, self.io_dtype))
            self.takes_pixels = bool(np.array_equal(q.astype(np.int32), np.arange(256) + pixel_zero))
        # Likewise an output whose codes dequantize to exactly the floats of the 8-bit pixels
        # (code - zero point) gives pixels: the tiler then copies them instead of blending floats.
        out_zero = {"int8": -128, "uint8": 0}.get(self.out_dtype.name)
        if self.takes_pixels and out_zero is not None and self.out_zero == out_zero:
            pixels = np.arange(256, dtype=np.uint8)
            codes = (pixels.astype(np.int32) + out_zero).astype(self.out_dtype)
            unit = dequantize(codes, self.out_scale, self.out_zero, np.empty(256, np.float32))
            self.gives_pixels = bool(np.array_equal(unit, pixels_to_unit(pixels, np.empty(256, np.float32))))
            self._out_pixels = np.zeros(shape, np.uint8)

    def run(self, tile: np.ndarray) -> np.ndarray:
        if self.io_dtype.kind == "f":
            self._in_buf[...] = tile
        else:
            quantize(tile, self.in_scale, self.in_zero, self._in_buf, self._tmp)
        return self._invoke()

    def run_pixels(self, tile: np.ndarray) -> np.ndarray:
        if not self.takes_pixels:
            return super().run_pixels(tile)
        if not self.gives_pixels:
            self._pixels_in(tile, self._in_buf)
            return self._invoke()
        # Straight into and out of the interpreter's own tensors (no set/get_tensor copies); the
        # views are dropped before invoke(), which refuses to run while one is held.
        self._pixels_in(tile, self.interpreter.tensor(self._in_index)())
        try:
            self.interpreter.invoke()
        except (RuntimeError, ValueError) as exc:
            raise self._run_failed(exc) from None
        codes = self.interpreter.tensor(self._out_index)()
        if self.out_dtype == np.int8:  # code + 128: the top bit flipped again
            np.bitwise_xor(codes.view(np.uint8), 0x80, out=self._out_pixels)
        else:
            self._out_pixels[...] = codes
        del codes
        return self._out_pixels

    def _run_failed(self, exc: BaseException) -> ModelError:
        return ModelError(f"{self.path.name}: the TFLite interpreter failed to run the model ({_first_line(exc)})")

    def _pixels_in(self, tile: np.ndarray, dest: np.ndarray) -> None:
        if self.io_dtype == np.int8:  # p - 128 is p with its top bit flipped, read as int8
            np.bitwise_xor(tile, 0x80, out=dest.view(np.uint8))
        else:
            dest[...] = tile

    def _invoke(self) -> np.ndarray:
        try:
            self.interpreter.set_tensor(self._in_index, self._in_buf)
            self.interpreter.invoke()
            result = self.interpreter.get_tensor(self._out_index)
        except (RuntimeError, ValueError) as exc:  # a model that loads but cannot run is a bad model
            raise self._run_failed(exc) from None
        if self.out_dtype.kind == "f":
            check_finite(self.path, result)
            np.clip(result, 0.0, 1.0, out=self._out_buf)
        else:
            dequantize(result, self.out_scale, self.out_zero, self._out_buf)
        return self._out_buf


@contextlib.contextmanager
def _native_info_silenced():
    """Drop the native runtime's "INFO: Created TensorFlow Lite XNNPACK delegate" line.

    The C++ runtime logs straight to file descriptor 2; while the interpreter is built, fd 2 goes
    to a temporary file, and everything but INFO lines is written back to stderr afterwards.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters): leave it alone
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [ln for ln in capture.read().decode("utf-8", "replace").splitlines(True) if not ln.startswith("INFO: ")]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def quantize(x: np.ndarray, scale: float, zero_point: int, out: np.ndarray, tmp: np.ndarray | None = None) -> np.ndarray:
    """out = clip(round(x / scale + zero_point)) in out's integer dtype (round half to even, no bare cast)."""
    tmp = np.empty(out.shape, np.float32) if tmp is None else tmp
    info = np.iinfo(out.dtype)
    np.divide(x, scale, out=tmp)
    tmp += zero_point
    np.rint(tmp, out=tmp)
    np.clip(tmp, info.min, info.max, out=tmp)
    out[...] = tmp
    return out


def dequantize(q: np.ndarray, scale: float, zero_point: int, out: np.ndarray) -> np.ndarray:
    """out = clip((q - zero_point) * scale, 0, 1) as float32."""
    np.subtract(q, zero_point, out=out, dtype=np.float32)
    out *= scale
    np.clip(out, 0.0, 1.0, out=out)
    return out


class OnnxBackend(Backend):
    kind = "onnx"

    def __init__(self, path: Path, data: bytes, threads: int | None = None) -> None:
        try:  # before onnxruntime sees the bytes: external data must stay beside the model
            external = check_external_data(data, path.parent)
        except UnsafeExternalData as exc:
            raise ModelError(f"{path.name}: refused: {exc}") from None
        except OnnxFormatError as exc:
            raise ModelError(f"{path.name} is not a loadable ONNX model (malformed protobuf: {exc})") from None
        try:
            check_operators(data)
        except OnnxFormatError as exc:
            raise ModelError(f"{path.name}: refused before loading: {exc}") from None
        try:
            import onnxruntime as ort  # type: ignore[import-not-found]  # optional, lazily
        except ImportError:
            raise ModelError(f"{path.name} is an ONNX model but onnxruntime is not installed (pip install onnxruntime)") from None
        ort.set_default_logger_severity(4)  # its own (coloured) log lines: errors come back as exceptions
        options = ort.SessionOptions()
        options.intra_op_num_threads = effective_threads(threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 4
        if external:  # the bytes are loaded from memory: tell onnxruntime where their folder is
            options.add_session_config_entry(
                "session.model_external_initializers_file_folder_path", os.path.realpath(path.parent)
            )
        try:
            self.session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{path.name} is not a loadable ONNX model ({_first_line(exc)})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise ModelError(f"{path.name} carries no '{METADATA_KEY}' metadata; export it with `python -m export`")
        try:
            contract = ModelContract.from_json(meta[METADATA_KEY])
        except ContractError as exc:
            raise ModelError(f"{path.name}: {exc}") from None
        super().__init__(path, contract)
        self.threads = options.intra_op_num_threads
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path.name}: expected 1 input and 1 output, got {len(inputs)} and {len(outputs)}")
        inp = inputs[0]
        if inp.type != "tensor(float)":
            raise ModelError(f"{path.name}: ONNX input type {inp.type} is not supported (float32 NCHW expected)")
        shape = list(inp.shape)
        t, c = contract.tile_size, contract.channels
        if len(shape) != 4 or shape[1] != c or shape[0] not in (1, None) and not isinstance(shape[0], str):
            raise ModelError(f"{path.name}: ONNX input shape {shape} is not [1, {c}, H, W] (NCHW)")
        static = [isinstance(s, int) for s in shape[2:]]
        if all(static):
            if shape[2:] != [t, t]:
                raise ModelError(f"{path.name}: ONNX input shape {shape} does not match the contract tile_size {t}")
        elif any(static):
            raise ModelError(f"{path.name}: ONNX input shape {shape} mixes static and dynamic sides")
        else:
            self.dynamic = True
        out = outputs[0]
        if out.type != "tensor(float)":
            raise ModelError(f"{path.name}: ONNX output type {out.type} is not supported (float32 NCHW expected)")
        self._in_name = inp.name
        self._in_buf = np.zeros((1, c, t, t), np.float32)
        self._out_buf = np.zeros((1, t, t, c), np.float32)
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = 4
        # One probe tile at load: a model whose output is not [1, C, T, T] float32 (whatever it
        # declares) is a bad model (78), not a bad image for every input.
        probe = self._session_run(self._in_buf)
        if probe.shape != (1, c, t, t) or probe.dtype != np.float32:
            raise ModelError(f"{path.name}: ONNX output shape {list(probe.shape)} {probe.dtype} does not match the "
                             f"contract (expected [1, {c}, {t}, {t}] float32 NCHW)")

    def _session_run(self, nchw: np.ndarray) -> np.ndarray:
        """session.run of one input, interruptible by signals (see run_interruptible); ModelError if it fails."""
        self._run_options.terminate = False
        try:
            (result,) = run_interruptible(lambda: self.session.run(None, {self._in_name: nchw}, self._run_options),
                                          lambda: setattr(self._run_options, "terminate", True))
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{self.path.name}: onnxruntime failed to run the model ({_first_line(exc)})") from None
        return result

    def run(self, tile: np.ndarray) -> np.ndarray:
        if tile.shape == self._out_buf.shape:
            nchw, out = self._in_buf, self._out_buf
            nchw[...] = tile.transpose(0, 3, 1, 2)
        elif self.dynamic:  # any-size input for dynamic models (whole-image inference)
            nchw, out = np.ascontiguousarray(tile.transpose(0, 3, 1, 2), np.float32), None
        else:
            raise ValueError(f"tile shape {tile.shape} != {self._out_buf.shape}")
        result = self._session_run(nchw)
        check_finite(self.path, result)
        result = result.transpose(0, 2, 3, 1)
        if out is None:
            return np.clip(result, 0.0, 1.0)
        np.clip(result, 0.0, 1.0, out=out)
        return out


def check_finite(path: Path, values: np.ndarray) -> None:
    """ModelError if a float model output has NaN or infinite values (clipping would hide them as black)."""
    if not np.isfinite(values).all():
        raise ModelError(f"{path.name}: the model produced NaN or infinite values")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_model_bytes(path: str | os.PathLike) -> tuple[Path, bytes]:
    """A model file's bytes, after its identifier and size are checked from the open file.

    Nothing is read whole before it is known to be a TFLite/ONNX file of at most MAX_MODEL_BYTES.
    """
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model not found: {p}")
    if not p.is_file():
        raise ModelError(f"model is not a file: {p}")
    try:
        with open(p, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            model_kind(p, fh.read(8))  # 'not a TFLite model' before any large read
            if size > MAX_MODEL_BYTES:
                raise ModelError(f"{p.name} is {size:,} bytes, larger than the {MAX_MODEL_BYTES:,} a model may be")
            fh.seek(0)
            return p, fh.read(MAX_MODEL_BYTES + 1)
    except OSError as exc:
        raise ModelError(f"cannot read model {p}: {exc.strerror or exc}") from None


def tflite_contract(path: Path, data: bytes) -> ModelContract:
    """The contract of a TFLite file, as ModelError on any problem."""
    try:
        return read_contract(data)
    except (FlatbufferError, ContractError) as exc:
        raise ModelError(f"{path.name}: {exc}") from None


def validate_tflite_model(path: Path, data: bytes, contract: ModelContract) -> ModelSummary:
    """Check the flatbuffer structure and the I/O tensors against the contract, before any interpreter.

    Raises ModelError (one line) for a structurally unsafe model (see tflite_validate) or one
    whose single input/output is not [1, T, T, C] of float32, int8 or uint8.
    """
    try:
        summary = validate_tflite(data)
    except FlatbufferError as exc:
        raise ModelError(f"{path.name}: refused before loading: {exc}") from None
    if len(summary.inputs) != 1 or len(summary.outputs) != 1:
        raise ModelError(
            f"{path.name}: expected 1 input and 1 output tensor, got {len(summary.inputs)} and {len(summary.outputs)}"
        )
    want = [1, contract.tile_size, contract.tile_size, contract.channels]
    for what, info in (("input", summary.inputs[0]), ("output", summary.outputs[0])):
        if list(info.shape) != want:
            raise ModelError(
                f"{path.name}: {what} shape {list(info.shape)} does not match the contract "
                f"(tile_size {contract.tile_size}, channels {contract.channels}: expected {want} NHWC)"
            )
        if info.dtype not in ("float32", "int8", "uint8"):
            raise ModelError(f"{path.name}: {what} dtype {info.dtype} is not supported (float32, int8 or uint8)")
        if info.dtype != "float32" and len(info.scales) != 1:
            raise ModelError(f"{path.name}: quantized {what} tensor needs one scale and zero point, has {len(info.scales)}")
    return summary


def open_backend(
    path: str | os.PathLike,
    threads: int | None = None,
    device: str = "cpu",
    cpu_fallback: bool = False,
) -> Backend:
    """Validate the model file and open the right backend for it.

    Checks, in order: the file exists; it is TFLite ('TFL3') or ONNX; it carries the contract; a
    TFLite flatbuffer is structurally valid (tflite_validate: indices, shapes, buffers) and its
    input/output are [1, T, T, C] float32/int8/uint8 matching the contract -- all before the
    interpreter sees the bytes; an ONNX file's external data stays inside its folder. Every
    failure is a ModelError (DeviceError for a missing Edge TPU) with one line.
    """
    if device not in DEVICES:
        raise ModelError(f"unknown device {device!r} (choose from {', '.join(DEVICES)})")
    p, data = read_model_bytes(path)
    kind = model_kind(p, data[:8])
    if kind == "onnx":
        if device == "edgetpu":
            if not cpu_fallback:
                raise DeviceError(f"{p.name}: the Edge TPU runs only compiled .tflite models (pass --cpu-fallback to use the CPU)")
            log.warning("the Edge TPU runs only .tflite models; running %s on the CPU", p.name)
        return OnnxBackend(p, data, threads=threads)
    contract = tflite_contract(p, data)
    validate_tflite_model(p, data, contract)
    delegate = None
    if device == "edgetpu":
        delegate = load_edgetpu_delegate(cpu_fallback)
        if delegate is not None and _EDGETPU_OP not in data:
            log.warning("%s was not compiled with edgetpu_compiler: the Edge TPU will run none of it", p.name)
    if delegate is None and _EDGETPU_OP in data:
        sibling = p.with_name(p.name.replace("_edgetpu", ""))
        if cpu_fallback and sibling != p and sibling.is_file():
            log.warning("%s needs the Edge TPU; running %s on the CPU instead", p.name, sibling.name)
            p, data = read_model_bytes(sibling)
            contract = tflite_contract(p, data)
            validate_tflite_model(p, data, contract)
        else:
            raise ModelError(
                f"{p.name} is compiled for the Edge TPU (edgetpu-custom-op) and cannot run on the CPU; "
                "use --device edgetpu or the model without the _edgetpu suffix"
            )
    return TFLiteBackend(p, data, contract, threads=threads, delegate=delegate)


def load_edgetpu_delegate(cpu_fallback: bool = False) -> Any:
    """The Coral Edge TPU delegate; DeviceError if it cannot load, or None (with a warning) on cpu_fallback."""
    mod = tflite_interpreter_module()
    lib = edgetpu_library()
    try:
        # Probe the shared library first: a failed load_delegate() leaves a half-built Delegate whose
        # __del__ prints a traceback in some interpreter versions.
        ctypes.CDLL(lib)
        return mod.load_delegate(lib)
    except (ValueError, OSError, RuntimeError) as exc:
        reason = _first_line(exc).replace(f"{lib}: ", "")
        if not cpu_fallback:
            raise DeviceError(
                f"Edge TPU unavailable: cannot load delegate {lib} ({reason}); install the Edge TPU runtime and "
                "plug in the device, or pass --cpu-fallback to run on the CPU"
            ) from None
        log.warning("Edge TPU unavailable (%s: %s); falling back to the CPU as --cpu-fallback asks", lib, reason)
        return None
