"""`python -m edge_runtime.bench`: the shipped INT8 model against its peers, in one run.

Every row runs on the same noisy images, with the same thread count, on the same machine, each in
a fresh subprocess (so its peak memory is its own):

    int8         NAME_int8.tflite through the runtime (XNNPACK)        <- the reference row
    float        NAME_float.tflite            fp16   NAME_fp16.tflite
    int8-ptq     NAME_int8_ptq.tflite         (post-training quantized, if exported)
    onnx-float   NAME_float.onnx (ONNX Runtime)   onnx-qdq   NAME_qdq.onnx
    torch        the training checkpoint (--checkpoint), float, whole image
    nlm          edge_runtime.classic.nlm_opencv, sigma 25 (the classic denoiser)
    wiener       edge_runtime.classic.wiener_deconvolve, 9x9 gaussian kernel (speed only, numpy.fft)
    limit        fully-int8 3x3/1x1/depthwise 128-channel convs (edge_runtime/bench_data):
                 the machine's INT8 MAC/s through the same interpreter and threads

It prints megapixels/s, peak memory and PSNR (sigma 25) per row with ratios against INT8, the
INT8 model's MAC/s as a fraction of the INT8 limit, where the time goes (per-op profile, per-tile
Python overhead, tiling overhead), board estimates, and PASS/FAIL lines for the targets; and
writes everything as JSON. `--scaling` adds 1/4/12/48-megapixel images and a thread sweep;
`--overlaps 0,8,16` runs the INT8 model again at each tile overlap (speed and PSNR for each).
`--process` instead compares the whole command (read + restore + write) with the model alone on
one 3.8 MP PNG and a batch of twenty 12 MP JPEGs (edge_runtime/bench_process.py). `--pnp` times
plug-and-play deconvolution at several iteration counts against one denoiser pass
(edge_runtime/bench_pnp.py).

Exit status: 0 every target measured passes, 1 a target fails, 2 usage error or no INT8 model.
This module imports only the standard library and numpy; each row imports what it needs (torch,
cv2, onnxruntime) inside its subprocess, and a row whose package is missing is skipped
with the reason.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import bench_pnp, bench_process

PROG = "python -m edge_runtime.bench"
BENCH_DATA = Path(__file__).resolve().parent / "bench_data"
RESULT_TAG = "EDGE_BENCH_RESULT "
EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

#: Targets from the performance issue.
TARGET_INT8_VS_FLOAT = 2.0
TARGET_INT8_VS_NLM_SPEED = 5.0
TARGET_INT8_VS_NLM_DB = 4.0
TARGET_ROOFLINE = 0.30
TARGET_TILING_OVERHEAD = 0.15

#: Wiener row: a 9x9 gaussian blur kernel of this standard deviation (pixels).
WIENER_KERNEL_SIZE = 9
WIENER_KERNEL_STD = 1.6


@dataclass(frozen=True)
class RowSpec:
    key: str
    label: str
    kind: str  # runtime | torch | nlm | wiener
    file: str = ""  # pattern with {name}
    packages: tuple[str, ...] = ()
    denoiser: bool = True


ROWS: tuple[RowSpec, ...] = (
    RowSpec("int8", "TFLite INT8 (XNNPACK)", "runtime", "{name}_int8.tflite", ("tflite",)),
    RowSpec("float", "TFLite float32", "runtime", "{name}_float.tflite", ("tflite",)),
    RowSpec("fp16", "TFLite FP16 weights", "runtime", "{name}_fp16.tflite", ("tflite",)),
    RowSpec("int8-ptq", "TFLite INT8 PTQ", "runtime", "{name}_int8_ptq.tflite", ("tflite",)),
    RowSpec("onnx-float", "ONNX Runtime float", "runtime", "{name}_float.onnx", ("onnxruntime",)),
    RowSpec("onnx-qdq", "ONNX Runtime QDQ", "runtime", "{name}_qdq.onnx", ("onnxruntime",)),
    RowSpec("torch", "PyTorch float (whole image)", "torch", "", ("torch",)),
    RowSpec("nlm", "OpenCV NLM (fastNlMeans)", "nlm", "", ("cv2",)),
    RowSpec("wiener", "Wiener deconv (9x9 gaussian)", "wiener", "", (), denoiser=False),
)
ROW_KEYS = tuple(r.key for r in ROWS)
#: Alternating rounds (at least) of the tiling-overhead measurement; the best of each side counts.
TILING_ROUNDS = 5

#: Published per-board rates used for the estimates (see docs/performance.md). Effective MAC/s of
#: MobileNet v2 1.0 224 (300 M MACs, Sandler et al. 2018, Table 4), an inverted-residual network
#: like ours, from published latencies.
MOBILENET_V2_MACS = 300e6
BOARDS: tuple[dict, ...] = (
    {
        "board": "Raspberry Pi 4 (4x Cortex-A72, 1.5 GHz)",
        "gmacs_low": MOBILENET_V2_MACS / 44e-3 / 1e9,
        "gmacs_high": MOBILENET_V2_MACS / 44e-3 / 1e9,
        "source": "XNNPACK README (github.com/google/XNNPACK, 'Raspberry Pi' table): MobileNet v2 1.0X, "
        "multi-threaded, 44 ms on RPi 4 (BCM2711), FP32",
    },
    {
        "board": "Raspberry Pi 5 (4x Cortex-A76, 2.4 GHz)",
        "gmacs_low": 2 * MOBILENET_V2_MACS / 44e-3 / 1e9,
        "gmacs_high": 3 * MOBILENET_V2_MACS / 44e-3 / 1e9,
        "source": "Raspberry Pi 4 figure x 2-3: 'a 2-3x increase in CPU performance relative to Raspberry Pi 4' "
        "(raspberrypi.com/news/introducing-raspberry-pi-5/)",
    },
    {
        "board": "Coral Edge TPU (USB Accelerator, USB 3.0)",
        "gmacs_low": MOBILENET_V2_MACS / 2.6e-3 / 1e9,
        "gmacs_high": MOBILENET_V2_MACS / 2.6e-3 / 1e9,
        "source": "coral.ai/docs/edgetpu/benchmarks, Table 1: MobileNet v2 (224x224) 2.6 ms with the USB "
        "Accelerator (peak: 4 TOPS = 2 TMAC/s)",
    },
)


# --------------------------------------------------------------------------------------------
# Small helpers (both processes)
# --------------------------------------------------------------------------------------------


def _proc_status_mib(field: str) -> float | None:
    """A memory field (VmHWM, VmRSS) of /proc/self/status in MiB, or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def peak_rss_mib() -> float | None:
    """This process's peak resident set size in MiB.

    Linux: VmHWM, the high-water mark of this program's own address space. (getrusage's
    ru_maxrss is not used there: after fork + exec it also holds the parent's RSS at the time of
    the fork, which would give every row the benchmark driver's memory.) Elsewhere ru_maxrss;
    None where neither exists.
    """
    hwm = _proc_status_mib("VmHWM")
    if hwm is not None:
        return hwm
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def rss_now_mib() -> float | None:
    """Current resident set size in MiB (Linux VmRSS), else the peak."""
    now = _proc_status_mib("VmRSS")
    return now if now is not None else peak_rss_mib()


def has_package(name: str) -> bool:
    if name == "tflite":
        return any(importlib.util.find_spec(m) is not None for m in ("ai_edge_litert", "tflite_runtime", "tensorflow"))
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def gaussian_kernel(size: int = WIENER_KERNEL_SIZE, std: float = WIENER_KERNEL_STD) -> np.ndarray:
    ax = np.arange(size) - (size - 1) / 2
    g = np.exp(-(ax**2) / (2 * std * std))
    k = np.outer(g, g)
    return k / k.sum()


def make_noisy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """clip(round(clean + N(0, sigma))) as uint8, seeded."""
    rng = np.random.default_rng(seed)
    noisy = clean.astype(np.float64) + rng.normal(0.0, sigma, clean.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    from .metrics import psnr

    return psnr(a.astype(np.float32) / 255.0, b.astype(np.float32) / 255.0)


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(x, np.float64) * 255.0), 0, 255).astype(np.uint8)


def synthetic_image(megapixels: float, seed: int = 0, band: int = 512) -> np.ndarray:
    """A 4:3 uint8 RGB image of about `megapixels`, made band by band (no large temporaries)."""
    w = int(round(math.sqrt(megapixels * 1e6 * 4 / 3)))
    h = int(round(megapixels * 1e6 / w))
    img = np.empty((h, w, 3), np.uint8)
    rng = np.random.default_rng(seed)
    ramp = (np.arange(w, dtype=np.uint16) * 255 // max(w - 1, 1)).astype(np.uint8)
    for y in range(0, h, band):
        rows = min(band, h - y)
        img[y : y + rows] = ramp[None, :, None]
        img[y : y + rows] ^= rng.integers(0, 64, (rows, w, 3), dtype=np.uint8)
    return img


# --------------------------------------------------------------------------------------------
# Child side: one row per process
# --------------------------------------------------------------------------------------------


def _load_images(workdir: Path, count: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    clean = [np.load(workdir / f"clean_{i}.npy") for i in range(count)]
    noisy = [np.load(workdir / f"noisy_{i}.npy") for i in range(count)]
    return clean, noisy


def _timed_passes(fn, images: list[np.ndarray], repeats: int) -> tuple[list[float], list[np.ndarray]]:
    """Warm up on the first image, then time `repeats` passes over all images."""
    fn(images[0])
    times, outs = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        outs = [fn(img) for img in images]
        times.append(time.perf_counter() - t0)
    return times, outs


def _child_runtime(spec: dict, noisy: list[np.ndarray]) -> tuple[dict, Any]:
    from .api import load_model

    model = load_model(spec["path"], threads=spec["threads"], overlap=spec.get("overlap"))
    res: dict[str, Any] = {
        "backend": model.backend.kind,
        "tile_size": model.tile_size,
        "overlap": model.overlap,
        "quantization": model.contract.quantization,
        "contract_macs_per_pixel": _contract_macs(model.contract),
    }
    model.stats.tiles, model.stats.inference_seconds = 0, 0.0
    times, outs = _timed_passes(model.restore, noisy, spec["repeats"])
    warm_tiles = model.tiler(*noisy[0].shape[:2], noisy[0].shape[2]).tiles
    res["tiles_per_pass"] = (model.stats.tiles - warm_tiles) // spec["repeats"]
    res["backend_seconds_per_pass"] = model.stats.inference_seconds * res["tiles_per_pass"] / max(model.stats.tiles, 1)
    interp = getattr(model.backend, "interpreter", None)
    if interp is not None:
        from . import profiling

        ops = profiling.graph_ops(interp)
        res["graph_macs_per_tile"] = sum(o["macs"] for o in ops) or None
        res["delegate_partitions"] = profiling.delegate_partitions(interp)
        res["ops_outside_delegate"] = sorted({o["op"] for o in ops if o["delegated"] is False})
        inv = profiling.time_invokes(interp, max(5, spec["repeats"] * 3), warmup=1)
        res["invoke_ms_min"] = min(inv) * 1e3
        res["invoke_ms_median"] = float(np.median(inv)) * 1e3
    return res, (model, times, outs)


def _contract_macs(contract: Any) -> float | None:
    value = getattr(contract, "macs_per_pixel", None)
    if value is None and isinstance(getattr(contract, "recipe", None), dict):
        value = contract.recipe.get("macs_per_pixel")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _interleaved(fns: dict[str, Any], images: list[np.ndarray], rounds: int) -> dict[str, float]:
    """Best seconds per pass over `images` of each function, rounds alternating between them."""
    for fn in fns.values():  # warm-up
        fn(images[0])
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for img in images:
                fn(img)
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def _int8_details(spec: dict, model: Any, noisy: list[np.ndarray]) -> dict:
    """Tiling overhead, per-tile breakdown, buffer reuse, per-op and Python profiles (INT8 row)."""
    from . import profiling
    from .api import FrameStream, RestorationModel

    out: dict[str, Any] = {}
    rounds = max(3, spec["repeats"])
    # Tiling overhead: the same backend with overlap 0, alternating with the contract's overlap. A
    # few more rounds than elsewhere: the overhead is a small difference of two noisy times, and
    # interference on a shared machine only ever adds time, so the best of more rounds is closer.
    plain = RestorationModel(model.backend, overlap=0)
    best = _interleaved({"overlap": model.restore, "plain": plain.restore}, noisy, max(TILING_ROUNDS, rounds))
    tiles_ov = sum(model.tiler(*im.shape[:2], im.shape[2]).tiles for im in noisy)
    tiles_0 = sum(plain.tiler(*im.shape[:2], im.shape[2]).tiles for im in noisy)
    t, o = model.tile_size, model.overlap
    ov_s, no_s = best["overlap"], best["plain"]
    out["tiling"] = {
        "tile": t,
        "overlap": o,
        "tiles_with_overlap": tiles_ov,
        "tiles_without_overlap": tiles_0,
        "seconds_with_overlap": ov_s,
        "seconds_without_overlap": no_s,
        "image_overhead": ov_s / no_s - 1.0,
        # Steady state (large images): cost per output pixel = time per tile / useful pixels per tile.
        "steady_state_overhead": (ov_s / tiles_ov / (t - o) ** 2) / (no_s / tiles_0 / t**2) - 1.0,
        "ideal_steady_state_overhead": (t / (t - o)) ** 2 - 1.0,
    }
    # Buffer reuse: FrameStream (all buffers made once) vs restore() (output allocated per call).
    img = noisy[0]
    stream = FrameStream(model, img.shape[0], img.shape[1], img.shape[2])
    best = _interleaved({"restore": model.restore, "stream": stream.process}, [img], rounds)
    out["buffer_reuse"] = {"restore_seconds": best["restore"], "framestream_seconds": best["stream"],
                           "framestream_gain": best["restore"] / best["stream"] - 1.0}
    if getattr(model.backend, "interpreter", None) is not None:
        out["tile_breakdown"] = profiling.tile_breakdown(model, img, repeats=rounds)
    if spec.get("python_profile", True):
        out["python_profile"] = profiling.python_profile(model, img)
    if spec.get("op_profile", True) and getattr(model.backend, "interpreter", None) is not None:
        try:
            prof = profiling.op_profile(Path(spec["path"]).read_bytes(), spec["threads"], repeats=max(5, spec["repeats"] * 3))
            prof["full_invoke_ms"] = min(profiling.time_invokes(model.backend.interpreter, 10)) * 1e3
            out["op_profile"] = prof
        except ImportError as exc:
            out["op_profile"] = {"skipped": str(exc)}
    return out


def _optional(name: str) -> Any:
    """Import an optional heavy package (torch, cv2) by name, inside the row subprocess that needs it.

    By name rather than an import statement: edge_runtime's sources carry no torch/cv2/tensorflow
    import statements at all (tests/test_runtime_backends.py checks), and the benchmark's rows are
    the one place the runtime package deliberately drives them.
    """
    import importlib

    return importlib.import_module(name)


def _train_package() -> str:
    """`edge_restore.train` in an installed wheel, the checkout's top-level `train` otherwise."""
    return "edge_restore.train" if importlib.util.find_spec("edge_restore") is not None else "train"


def _child_torch(spec: dict, noisy: list[np.ndarray]) -> tuple[dict, Any]:
    torch = _optional("torch")

    train = _train_package()
    load_restorer = importlib.import_module(f"{train}.checkpoint").load_restorer
    macs_per_pixel = importlib.import_module(f"{train}.model").macs_per_pixel
    set_quant_mode = importlib.import_module(f"{train}.quant").set_quant_mode

    torch.set_num_threads(spec["threads"])
    model, ckpt = load_restorer(spec["path"])
    set_quant_mode(model, "off")  # float: the QAT fake-quant points off
    mult = model.cfg.size_multiple
    res = {"macs_per_pixel": float(macs_per_pixel(model)), "qat_checkpoint": bool(ckpt.get("qat")),
           "size_multiple": mult}

    def run(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        ph, pw = (-h) % mult, (-w) % mult
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)[None]
        if ph or pw:
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect")
        with torch.inference_mode():
            y = model(x)[0, :, :h, :w].clamp_(0, 1).mul_(255.0).round_()
        return y.to(torch.uint8).permute(1, 2, 0).numpy()

    times, outs = _timed_passes(run, noisy, spec["repeats"])
    return res, (None, times, outs)


def _child_nlm(spec: dict, noisy: list[np.ndarray]) -> tuple[dict, Any]:
    cv2 = _optional("cv2")

    from .classic import NLM_OPENCV_H_FACTOR, nlm_opencv

    cv2.setNumThreads(spec["threads"])
    sigma = spec["sigma"]
    times, outs = _timed_passes(lambda im: to_u8(nlm_opencv(im.astype(np.float32) / 255.0, sigma)), noisy, spec["repeats"])
    return {"h": NLM_OPENCV_H_FACTOR * sigma, "cv2": cv2.__version__}, (None, times, outs)


def _child_wiener(spec: dict, noisy: list[np.ndarray]) -> tuple[dict, Any]:
    from .classic import wiener_deconvolve

    kernel = gaussian_kernel()
    sigma = spec["sigma"]
    # numpy.fft (the board implementation) is single-threaded: --threads does not apply to this row.
    times, outs = _timed_passes(
        lambda im: to_u8(wiener_deconvolve(im.astype(np.float32) / 255.0, kernel, sigma=sigma)), noisy, spec["repeats"]
    )
    return {"kernel": f"{WIENER_KERNEL_SIZE}x{WIENER_KERNEL_SIZE} gaussian, std {WIENER_KERNEL_STD}"}, (None, times, None)


def _child_limit(spec: dict) -> dict:
    """int8 MAC/s of each limit model through the runtime's interpreter, best of the repeats."""
    from . import profiling
    from .backends import tflite_interpreter_module

    from .bench_data import make_int8_limit as gen

    mod = tflite_interpreter_module()
    folder = Path(spec["folder"])
    rng = np.random.default_rng(0)
    results = {}
    for name in gen.LIMIT_MODELS:
        path = folder / name
        interp = mod.Interpreter(model_path=str(path), num_threads=spec["threads"])
        interp.allocate_tensors()
        for det in interp.get_input_details():
            interp.set_tensor(det["index"], profiling._random_input(det, rng))
        times = profiling.time_invokes(interp, max(20, spec["repeats"] * 5), warmup=2)
        macs = gen.macs(name)
        results[name] = {
            "macs_per_run": macs,
            "ms_min": min(times) * 1e3,
            "ms_median": float(np.median(times)) * 1e3,
            "gmacs_per_s": macs / min(times) / 1e9,
            "gmacs_per_s_median": macs / float(np.median(times)) / 1e9,
            "delegate_partitions": profiling.delegate_partitions(interp),
        }
    return {"models": results, "limit_model": gen.LIMIT_MODEL, "gmacs_per_s": results[gen.LIMIT_MODEL]["gmacs_per_s"],
            "interpreter": mod.name}


def _child_scaling(spec: dict) -> dict:
    from .api import load_model

    model = load_model(spec["path"], threads=spec["threads"])
    model.restore(synthetic_image(0.05, seed=1))  # warm-up (XNNPACK packs weights on first run)
    img = synthetic_image(spec["megapixels"], seed=spec.get("seed", 0))
    before = rss_now_mib()
    peak_before = peak_rss_mib()
    t0 = time.perf_counter()
    out = model.restore(img)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mib()
    image_mib = img.nbytes / 2**20
    res = {
        "megapixels": img.shape[0] * img.shape[1] / 1e6,
        "shape": list(img.shape),
        "threads": spec["threads"],
        "seconds": seconds,
        "megapixels_per_second": img.shape[0] * img.shape[1] / 1e6 / seconds,
        "rss_before_mib": before,
        "peak_rss_mib": peak,
        "peak_before_mib": peak_before,
        "image_mib": image_mib,
        "output_mib": out.nbytes / 2**20,
    }
    if before is not None and peak is not None:
        # What restore() needed beyond the input it was given and the output it returns.
        res["working_mib"] = peak - before - out.nbytes / 2**20
    return res


def child_main(spec: dict) -> dict:
    """Run one row (in its own process) and return its measurements."""
    kind = spec["kind"]
    start_peak = peak_rss_mib()
    if kind == "limit":
        return _child_limit(spec)
    if kind == "scaling":
        return _child_scaling(spec)
    workdir = Path(spec["workdir"])
    clean, noisy = _load_images(workdir, spec["images"])
    base = peak_rss_mib()
    handler = {"runtime": _child_runtime, "torch": _child_torch, "nlm": _child_nlm, "wiener": _child_wiener}[kind]
    res, (model, times, outs) = handler(spec, noisy)
    peak = peak_rss_mib()
    megapixels = sum(im.shape[0] * im.shape[1] for im in noisy) / 1e6
    res.update({
        "megapixels_per_pass": megapixels,
        "seconds": times,
        "megapixels_per_second": megapixels / min(times),
        "megapixels_per_second_median": megapixels / float(np.median(times)),
        "peak_rss_mib": peak,
        "startup_rss_mib": start_peak,
        "images_rss_mib": base,
        "row_memory_mib": None if peak is None or base is None else peak - base,
    })
    if outs is not None and spec.get("denoiser", True):
        res["psnr"] = float(np.mean([psnr_u8(o, c) for o, c in zip(outs, clean)]))
    if spec.get("details") and model is not None:
        res["details"] = _int8_details(spec, model, noisy)
    return res


# --------------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------------


def run_child(spec: dict, timeout: float) -> dict:
    """Run `spec` in a fresh interpreter; {"status": "ok", ...} or {"status": "error", "reason"}."""
    cmd = [sys.executable, "-m", "edge_runtime.bench", "--child", json.dumps(spec)]
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return {"status": "ok", **json.loads(line[len(RESULT_TAG):])}
    tail = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()]
    return {"status": "error", "reason": tail[-1] if tail else f"exit status {proc.returncode}"}


def load_clean_images(folder: str | None, crop: int | None) -> list[tuple[str, np.ndarray]]:
    if folder:
        from .imageio import read_image

        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"))
        images = []
        for p in paths:
            pic = read_image(p)
            color = pic.color if pic.color.dtype == np.uint8 else (pic.color >> 8).astype(np.uint8)
            if color.shape[2] == 1:
                color = np.repeat(color, 3, axis=2)
            images.append((p.name, color))
    else:
        from skimage import data  # lazy: only for the default image

        images = [("skimage.data.astronaut", np.asarray(data.astronaut(), np.uint8))]
    if crop:
        out = []
        for name, im in images:
            h, w = im.shape[:2]
            y, x = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
            out.append((name, np.ascontiguousarray(im[y : y + crop, x : x + crop])))
        images = out
    return images


def _fmt(x: float | None, spec: str = ".2f", none: str = "-") -> str:
    return none if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def compute_summary(rows: dict[str, dict], limit: dict | None, macs_info: dict) -> dict:
    """Ratios against INT8, roofline and targets, all computed from the measured numbers."""
    ref = rows.get("int8", {})
    ref_ok = ref.get("status") == "ok"
    for key, row in rows.items():
        if row.get("status") != "ok" or not ref_ok:
            continue
        row["int8_speedup"] = ref["megapixels_per_second"] / row["megapixels_per_second"]
        if row.get("peak_rss_mib") and ref.get("peak_rss_mib"):
            row["memory_vs_int8"] = row["peak_rss_mib"] / ref["peak_rss_mib"]
        if row.get("psnr") is not None and ref.get("psnr") is not None:
            row["int8_psnr_gain_db"] = ref["psnr"] - row["psnr"]

    summary: dict[str, Any] = {"macs": macs_info}
    mpp = macs_info.get("macs_per_pixel")
    roof: dict[str, Any] = {}
    if ref_ok and mpp:
        roof["achieved_gmacs_per_s"] = mpp * ref["megapixels_per_second"] * 1e6 / 1e9
    if ref_ok and ref.get("graph_macs_per_tile") and ref.get("invoke_ms_min"):
        roof["in_model_gmacs_per_s"] = ref["graph_macs_per_tile"] / (ref["invoke_ms_min"] / 1e3) / 1e9
    if limit and limit.get("status") == "ok":
        roof["limit_gmacs_per_s"] = limit["gmacs_per_s"]
        for k in ("achieved", "in_model"):
            if f"{k}_gmacs_per_s" in roof:
                roof[f"{k}_fraction"] = roof[f"{k}_gmacs_per_s"] / limit["gmacs_per_s"]
        models = limit.get("models", {})
        roof["ceilings"] = {n: m["gmacs_per_s"] for n, m in models.items()}
    summary["roofline"] = roof

    targets = []

    def target(name: str, ok: bool | None, detail: str, value: float | None = None, threshold: float | None = None) -> None:
        targets.append({"target": name, "status": "SKIP" if ok is None else ("PASS" if ok else "FAIL"),
                        "detail": detail, "value": value, "threshold": threshold})

    fl = rows.get("float", {})
    if ref_ok and fl.get("status") == "ok":
        r = fl["int8_speedup"]
        target("int8 >= 2x float TFLite", r >= TARGET_INT8_VS_FLOAT,
               f"INT8 {ref['megapixels_per_second']:.3f} MP/s vs float {fl['megapixels_per_second']:.3f} MP/s = {r:.2f}x",
               r, TARGET_INT8_VS_FLOAT)
    else:
        target("int8 >= 2x float TFLite", None, "needs the int8 and float rows")
    nl = rows.get("nlm", {})
    if ref_ok and nl.get("status") == "ok" and nl.get("psnr") is not None and ref.get("psnr") is not None:
        r, db = nl["int8_speedup"], nl["int8_psnr_gain_db"]
        target("int8 >= 5x NLM speed and >= 4 dB better", r >= TARGET_INT8_VS_NLM_SPEED and db >= TARGET_INT8_VS_NLM_DB,
               f"{r:.2f}x faster at {db:+.2f} dB than NLM ({ref['psnr']:.2f} vs {nl['psnr']:.2f} dB, sigma 25)", r,
               TARGET_INT8_VS_NLM_SPEED)
        summary["headline"] = f"INT8 is {r:.1f}x faster than OpenCV NLM at {db:+.2f} dB PSNR (sigma 25, same run)"
    else:
        target("int8 >= 5x NLM speed and >= 4 dB better", None, "needs the int8 and nlm rows")
    if "achieved_fraction" in roof:
        f = roof["achieved_fraction"]
        target(">= 30% of the INT8 limit", f >= TARGET_ROOFLINE,
               f"{roof['achieved_gmacs_per_s']:.2f} GMAC/s achieved of {roof['limit_gmacs_per_s']:.1f} GMAC/s = {100 * f:.1f}%",
               f, TARGET_ROOFLINE)
    else:
        target(">= 30% of the INT8 limit", None, "needs the int8 row, MACs/pixel and the limit")
    tiling = (ref.get("details") or {}).get("tiling")
    if tiling:
        ov = tiling["steady_state_overhead"]
        target("tiling overhead < 15%", ov < TARGET_TILING_OVERHEAD,
               f"{100 * ov:.1f}% per output pixel at tile {tiling['tile']}, overlap {tiling['overlap']} "
               f"(geometry alone {100 * tiling['ideal_steady_state_overhead']:.1f}%; on the benchmark image "
               f"{100 * tiling['image_overhead']:.1f}%: {tiling['tiles_with_overlap']} vs {tiling['tiles_without_overlap']} tiles)",
               ov, TARGET_TILING_OVERHEAD)
    else:
        target("tiling overhead < 15%", None, "needs the int8 row details")
    summary["targets"] = targets

    if mpp and ref_ok:
        t, o = ref.get("tile_size"), ref.get("overlap")
        factor = (t / (t - o)) ** 2 if t and o is not None and t > o else 1.0
        summary["boards"] = [
            {**b, "estimated_mpix_per_s_low": b["gmacs_low"] * 1e9 / (mpp * factor) / 1e6,
             "estimated_mpix_per_s_high": b["gmacs_high"] * 1e9 / (mpp * factor) / 1e6, "tiling_factor": factor}
            for b in BOARDS
        ]
    return summary


def resolve_macs(args: argparse.Namespace, rows: dict[str, dict]) -> dict:
    """MACs per pixel: --macs-per-pixel, else the contract, else the checkpoint, else the TFLite graph."""
    ref = rows.get("int8", {})
    graph = None
    if ref.get("graph_macs_per_tile") and ref.get("tile_size"):
        graph = ref["graph_macs_per_tile"] / ref["tile_size"] ** 2
    torch_mpp = rows.get("torch", {}).get("macs_per_pixel")
    candidates = [("--macs-per-pixel", args.macs_per_pixel), ("contract", ref.get("contract_macs_per_pixel")),
                  ("checkpoint (train.model.macs_per_pixel)", torch_mpp), ("TFLite graph (MACs per tile / tile area)", graph)]
    for source, value in candidates:
        if value:
            return {"macs_per_pixel": float(value), "source": source, "graph_macs_per_pixel": graph,
                    "checkpoint_macs_per_pixel": torch_mpp}
    return {"macs_per_pixel": None, "source": None, "graph_macs_per_pixel": graph, "checkpoint_macs_per_pixel": torch_mpp}


def print_report(result: dict, out=None) -> None:
    out = sys.stdout if out is None else out
    p = lambda *a: print(*a, file=out)  # noqa: E731
    m = result["meta"]
    p(f"edge-restore benchmark: {m['name']} from {m['models_dir']}, threads={m['threads']}, repeats={m['repeats']} "
      f"(best of), {m['images']} image(s), {m['megapixels']:.3f} MP per pass, sigma {m['sigma']:g}")
    p(f"machine: {m['machine']}, {m['cpu_count']} CPUs, python {m['python']}; memory: peak RSS (VmHWM / ru_maxrss) of a "
      "fresh process per row")
    if result["noisy_psnr"] is not None:
        p(f"noisy input PSNR: {result['noisy_psnr']:.2f} dB")
    p("")
    p(f"{'row':<30}{'MP/s':>9}{'INT8 x':>8}{'ms/tile':>9}{'PSNR dB':>9}{'dB vs':>8}{'peak MiB':>10}{'row MiB':>9}{'mem x':>7}")
    for key, row in result["rows"].items():
        label = row.get("label", key)
        if row.get("status") != "ok":
            p(f"{label:<30}  {row.get('status')}: {row.get('reason')}")
            continue
        tiles = row.get("tiles_per_pass")
        ms_tile = min(row["seconds"]) / tiles * 1e3 if tiles else None
        p(f"{label:<30}{_fmt(row['megapixels_per_second'], '.3f'):>9}{_fmt(row.get('int8_speedup'), '.2f'):>8}"
          f"{_fmt(ms_tile):>9}{_fmt(row.get('psnr')):>9}{_fmt(row.get('int8_psnr_gain_db'), '+.2f'):>8}"
          f"{_fmt(row.get('peak_rss_mib'), '.0f'):>10}{_fmt(row.get('row_memory_mib'), '.0f'):>9}"
          f"{_fmt(row.get('memory_vs_int8'), '.2f'):>7}")
    p("  INT8 x = INT8 MP/s / row MP/s (above 1: INT8 is faster); dB vs = INT8 PSNR - row PSNR; "
      "row MiB = peak RSS - RSS after loading the images (imports + model + run)")
    s = result["summary"]
    macs, roof = s["macs"], s["roofline"]
    p("")
    if macs.get("macs_per_pixel"):
        p(f"MACs/pixel: {macs['macs_per_pixel']:,.0f} (from {macs['source']}; graph {_fmt(macs.get('graph_macs_per_pixel'), ',.0f')}, "
          f"checkpoint {_fmt(macs.get('checkpoint_macs_per_pixel'), ',.0f')})")
    lim = result.get("limit") or {}
    if lim.get("status") == "ok":
        p(f"INT8 limit ({lim['interpreter']}, {m['threads']} thread(s), best of {len(lim.get('measurements', [1]))} "
          "measurements, before and after the rows): " + ", ".join(
            f"{n.replace('.tflite', '')} {v['gmacs_per_s']:.1f} GMAC/s" for n, v in lim["models"].items()))
    elif lim:
        p(f"INT8 limit: {lim.get('status')}: {lim.get('reason')}")
    if roof.get("achieved_gmacs_per_s") is not None:
        frac = f" = {100 * roof['achieved_fraction']:.2f}% of the limit" if "achieved_fraction" in roof else ""
        p(f"INT8 model achieved (MACs/pixel x output MP/s): {roof['achieved_gmacs_per_s']:.3f} GMAC/s{frac}")
    if roof.get("in_model_gmacs_per_s") is not None:
        frac = f" = {100 * roof['in_model_fraction']:.2f}% of the limit" if "in_model_fraction" in roof else ""
        p(f"INT8 model inside invoke() (graph MACs per tile / invoke time): {roof['in_model_gmacs_per_s']:.3f} GMAC/s{frac}")
    ref = result["rows"].get("int8", {})
    if ref.get("status") == "ok":
        p(f"INT8 graph: {ref.get('delegate_partitions')} XNNPACK partition(s); ops outside XNNPACK: "
          f"{', '.join(ref.get('ops_outside_delegate') or []) or 'none'}")
    det = ref.get("details") or {}
    if det:
        _print_details(det, p)
    tiles = result.get("tile_sweep") or []
    if tiles:
        p("")
        p("tile size and overlap sweep (INT8, same image and threads; a path ending in @N ran at overlap N):")
        p(f"  {'model':<44}{'tile':>6}{'overlap':>8}{'tiles':>7}{'MP/s':>9}{'ms/tile':>9}{'invoke ms':>10}{'steady MP/s':>12}"
          f"{'PSNR dB':>9}")
        for r in tiles:
            if r.get("status") != "ok":
                p(f"  {r['path']:<44}  {r.get('status')}: {r.get('reason')}")
                continue
            p(f"  {r['path'][-44:]:<44}{r['tile_size']:>6}{r['overlap']:>8}{r['tiles_per_pass']:>7}"
              f"{r['megapixels_per_second']:>9.3f}{min(r['seconds']) / r['tiles_per_pass'] * 1e3:>9.2f}{_fmt(r.get('invoke_ms_min')):>10}"
              f"{_fmt(r.get('steady_megapixels_per_second'), '.3f'):>12}{_fmt(r.get('psnr'), '.3f'):>9}")
        p("  steady MP/s = (tile - overlap)^2 useful pixels per tile / time per tile: the large-image rate, "
          "free of how the tile grid fits this image")
    sc = result.get("scaling") or []
    if sc:
        p("")
        p("scaling (INT8, synthetic 4:3 images, one process each):")
        p(f"  {'MP':>6}{'threads':>8}{'seconds':>9}{'MP/s':>8}{'s/MP':>8}{'image MiB':>10}{'peak MiB':>9}{'working MiB':>12}")
        for r in sc:
            if r.get("status") != "ok":
                p(f"  {r.get('megapixels_requested', '?'):>6} {r.get('status')}: {r.get('reason')}")
                continue
            p(f"  {r['megapixels']:>6.1f}{r['threads']:>8}{r['seconds']:>9.2f}{r['megapixels_per_second']:>8.3f}"
              f"{r['seconds'] / r['megapixels']:>8.3f}{r['image_mib']:>10.0f}{_fmt(r.get('peak_rss_mib'), '.0f'):>9}"
              f"{_fmt(r.get('working_mib'), '.1f'):>12}")
        p("  working MiB = peak RSS - RSS before restore() - output size: what tiling needs beyond input and output")
    boards = s.get("boards") or []
    if boards:
        p("")
        p("board estimates (ESTIMATES from published MobileNet v2 rates, not measurements):")
        for b in boards:
            lo, hi = b["estimated_mpix_per_s_low"], b["estimated_mpix_per_s_high"]
            rng = f"{lo:.2f}" if abs(hi - lo) < 1e-9 else f"{lo:.2f}-{hi:.2f}"
            gm = f"{b['gmacs_low']:.1f}" if b["gmacs_low"] == b["gmacs_high"] else f"{b['gmacs_low']:.1f}-{b['gmacs_high']:.1f}"
            p(f"  {b['board']:<44} ~{rng} MP/s  ({gm} GMAC/s effective; {b['source']})")
    p("")
    if s.get("headline"):
        p(s["headline"])
    for t in s["targets"]:
        p(f"{t['status']}: {t['target']}: {t['detail']}")
    if result.get("json_path"):
        p(f"JSON: {result['json_path']}")


def _print_details(det: dict, p) -> None:
    tb = det.get("tile_breakdown")
    if tb:
        p(f"per tile (INT8): invoke {tb['invoke_ms_per_tile']:.3f} ms + backend Python I/O "
          f"{tb['backend_python_ms_per_tile']:.3f} ms + tiler Python {tb['tiler_python_ms_per_tile']:.3f} ms "
          f"(Python {100 * tb['python_share']:.1f}%; Python parts timed with a no-op invoke)")
    br = det.get("buffer_reuse")
    if br:
        p(f"buffer reuse: restore() {br['restore_seconds'] * 1e3:.1f} ms vs FrameStream.process() "
          f"{br['framestream_seconds'] * 1e3:.1f} ms per image ({100 * br['framestream_gain']:+.1f}% for reuse)")
    op = det.get("op_profile")
    if op and "by_type" in op:
        p(f"per-op time (each op cut out and timed alone; sum {op['sum_ms']:.3f} ms vs whole invoke {op['full_invoke_ms']:.3f} ms):")
        for name, t in op["by_type"].items():
            rate = f", {t['gmacs_per_s']:.1f} GMAC/s" if t.get("gmacs_per_s") else ""
            p(f"  {name:<38}{t['count']:>4} ops {t['ms']:>8.3f} ms {100 * t['share']:>6.1f}%{rate}")
    elif op:
        p(f"per-op time: skipped: {op.get('skipped')}")
    pp = det.get("python_profile")
    if pp:
        p("Python profile of one restore() (cProfile, top by own time):")
        for r in pp[:8]:
            p(f"  {r['own_ms']:>8.2f} ms {100 * r['own_share']:>5.1f}% {r['calls']:>6} calls  {r['function']}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", default="models", help="folder with NAME_int8.tflite etc. (default models)")
    p.add_argument("--name", default="denoise", help="model file stem (default denoise)")
    p.add_argument("--checkpoint", help="training checkpoint (.pt) for the PyTorch row and MACs/pixel")
    p.add_argument("--images", help="folder of clean images (default: skimage.data.astronaut())")
    p.add_argument("--crop", type=int, help="centre-crop every image to at most NxN (quick runs)")
    p.add_argument("--sigma", type=float, default=25.0, help="Gaussian noise sigma on 0-255 (default 25)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every row (default: all CPUs)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per row; the best is reported (default 3)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the rows round-robin this many times and keep each row's fastest round (noisy machines)")
    p.add_argument("--rows", default=",".join(ROW_KEYS), help=f"comma-separated rows (default all: {','.join(ROW_KEYS)})")
    p.add_argument("--macs-per-pixel", type=float, help="MACs per pixel of the model (default: contract, checkpoint or graph)")
    p.add_argument("--no-limit", action="store_true", help="skip the INT8 limit measurement")
    p.add_argument("--limit-dir", default=str(BENCH_DATA), help="folder of the INT8 limit models (default edge_runtime/bench_data)")
    p.add_argument("--rebuild-limit-models", action="store_true", help="rebuild the limit models with TensorFlow first")
    p.add_argument("--no-op-profile", action="store_true", help="skip the per-op profile of the INT8 model")
    p.add_argument("--no-python-profile", action="store_true", help="skip the cProfile of restore()")
    p.add_argument("--tile-models", nargs="*", default=[], metavar="TFLITE",
                   help="more INT8 models (e.g. the same network exported with other --tile) to compare")
    p.add_argument("--overlaps", default="", metavar="N,N,...",
                   help="also run the INT8 model at these tile overlaps (e.g. 0,8,12,16): speed and PSNR per overlap")
    p.add_argument("--scaling", action="store_true", help="also time 1/4/12/48 MP images and a thread sweep (slow)")
    p.add_argument("--scaling-sizes", default="1,4,12,48", help="megapixels for --scaling (default 1,4,12,48)")
    p.add_argument("--scaling-threads", default="1,2", help="thread counts swept at the smallest size (default 1,2)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per row before it is abandoned (default 1800)")
    p.add_argument("--json", default=None, help="JSON output path (default runs/bench/NAME.json)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    bench_process.add_arguments(p)
    bench_pnp.add_arguments(p)
    return p


def _limit_files_ok(folder: Path) -> tuple[bool, str]:
    from .bench_data import make_int8_limit as gen

    missing = [n for n in gen.LIMIT_MODELS if not (folder / n).is_file()]
    if not missing:
        return True, ""
    if has_package("tensorflow"):
        gen.build(folder, missing)
        return True, ""
    return False, f"limit models missing ({', '.join(missing)}) and tensorflow is not installed to build them"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        result = child_main(spec)
        sys.stdout.write(RESULT_TAG + json.dumps(result) + "\n")
        return 0
    if args.process:
        return bench_process.main(args)
    if args.pnp:
        return bench_pnp.main(args)

    wanted = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in ROW_KEYS]
    if unknown:
        print(f"{PROG}: error: unknown row(s) {', '.join(unknown)} (choose from {', '.join(ROW_KEYS)})", file=sys.stderr)
        return EXIT_USAGE
    if args.threads < 1 or args.repeats < 1 or args.rounds < 1:
        print(f"{PROG}: error: --threads, --repeats and --rounds must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        overlaps = [int(o) for o in args.overlaps.split(",") if o.strip()]
        if any(o < 0 for o in overlaps):
            raise ValueError(args.overlaps)
    except ValueError:
        print(f"{PROG}: error: --overlaps takes comma-separated pixel counts >= 0, got {args.overlaps!r}", file=sys.stderr)
        return EXIT_USAGE
    models_dir = Path(args.models_dir)
    int8_path = models_dir / f"{args.name}_int8.tflite"
    if not int8_path.is_file():
        print(f"{PROG}: error: no INT8 model {int8_path} (the reference row); pass --models-dir/--name", file=sys.stderr)
        return EXIT_USAGE
    if "int8" not in wanted:
        wanted.insert(0, "int8")
    try:
        images = load_clean_images(args.images, args.crop)
    except ImportError:
        print(f"{PROG}: error: scikit-image is needed for the default image; pass --images DIR", file=sys.stderr)
        return EXIT_USAGE
    if not images:
        print(f"{PROG}: error: no images in {args.images}", file=sys.stderr)
        return EXIT_USAGE

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
        workdir = Path(tmp)
        noisy_psnr = []
        for i, (_, clean) in enumerate(images):
            noisy = make_noisy(clean, args.sigma, args.seed + i)
            np.save(workdir / f"clean_{i}.npy", clean)
            np.save(workdir / f"noisy_{i}.npy", noisy)
            noisy_psnr.append(psnr_u8(noisy, clean))
        common = {"workdir": str(workdir), "images": len(images), "threads": args.threads, "repeats": args.repeats,
                  "sigma": args.sigma}
        limit_before = None if args.no_limit else run_limit(args)
        rows: dict[str, dict] = {}
        for rnd in range(args.rounds):
            for spec in ROWS:
                if spec.key not in wanted or (rnd and rows[spec.key].get("status") != "ok"):
                    continue
                row = run_row(spec, args, common, models_dir, details=rnd == 0)
                row["label"] = spec.label
                rows[spec.key] = merge_rounds(rows.get(spec.key), row)
                _progress(spec.key + (f" (round {rnd + 1})" if args.rounds > 1 else ""), row)

        limit = None
        if not args.no_limit:
            # Measured before and after the rows; the best of the two is the machine's limit.
            limit = merge_limits(limit_before, run_limit(args))
            _progress("limit", limit)

        tile_sweep = []
        for path in args.tile_models:
            if not Path(path).is_file():
                tile_sweep.append({"path": path, "status": "skipped", "reason": "file not found"})
                continue
            tile_sweep.append(sweep_row(common, str(path), args.timeout))
        for overlap in overlaps:
            tile_sweep.append(sweep_row(common, str(int8_path), args.timeout, overlap))

    scaling = []
    if args.scaling:
        sizes = [float(s) for s in args.scaling_sizes.split(",") if s.strip()]
        thread_list = [int(t) for t in args.scaling_threads.split(",") if t.strip()]
        plan = [(mp, args.threads) for mp in sizes]
        plan += [(min(sizes), t) for t in thread_list if t != args.threads]
        for mp, th in plan:
            r = run_child({"kind": "scaling", "path": str(int8_path), "megapixels": mp, "threads": th}, args.timeout)
            r.setdefault("megapixels_requested", mp)
            r.setdefault("threads", th)
            scaling.append(r)
            _progress(f"scaling {mp:g} MP x{th}", r)

    macs_info = resolve_macs(args, rows)
    summary = compute_summary(rows, limit, macs_info)
    result = {
        "meta": {
            "name": args.name, "models_dir": str(models_dir), "threads": args.threads, "repeats": args.repeats,
            "sigma": args.sigma, "seed": args.seed, "images": len(images), "image_names": [n for n, _ in images],
            "megapixels": sum(im.shape[0] * im.shape[1] for _, im in images) / 1e6,
            "machine": f"{platform.machine()} {platform.processor() or platform.system()}".strip(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "wall_seconds": time.time() - started,
            "memory_method": "peak RSS of a fresh subprocess per row (Linux VmHWM, else getrusage ru_maxrss); row MiB = peak minus the "
            "peak after loading the images, i.e. imports + model + run",
            "timing_method": "best of --repeats passes over all images after one warm-up restore; with --rounds, "
            "rows run round-robin and each keeps its fastest round",
            "rounds": args.rounds,
        },
        "noisy_psnr": float(np.mean(noisy_psnr)) if noisy_psnr else None,
        "rows": rows,
        "limit": limit,
        "tile_sweep": tile_sweep,
        "scaling": scaling,
        "summary": summary,
    }
    json_path = Path(args.json) if args.json else Path("runs") / "bench" / f"{args.name}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    result["json_path"] = str(json_path)
    json_path.write_text(json.dumps(result, indent=2, default=_json_default) + "\n", encoding="utf-8")
    print_report(result)
    failed = any(t["status"] == "FAIL" for t in summary["targets"])
    return EXIT_FAIL if failed else EXIT_OK


def sweep_row(common: dict, path: str, timeout: float, overlap: int | None = None) -> dict:
    """One INT8 file at its own tile size and the given overlap (default: its contract's), in a
    fresh process, with its steady-state rate: useful pixels per tile over the time per tile."""
    spec = {**common, "kind": "runtime", "path": path} | ({} if overlap is None else {"overlap": overlap})
    r = run_child(spec, timeout)
    r["path"] = path if overlap is None else f"{path} @{overlap}"
    if r.get("status") == "ok" and r.get("tiles_per_pass"):
        useful = (r["tile_size"] - r["overlap"]) ** 2
        r["steady_megapixels_per_second"] = useful / (min(r["seconds"]) / r["tiles_per_pass"]) / 1e6
    _progress(f"tile {r['path']}", r)
    return r


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _progress(what: str, row: dict) -> None:
    status = "ok" if row.get("status") == "ok" else f"{row.get('status')} ({row.get('reason')})"
    print(f"[bench] {what}: {status}", file=sys.stderr, flush=True)


def merge_rounds(prev: dict | None, row: dict) -> dict:
    """Keep the fastest round of a row (the INT8 details come from the first round)."""
    rates = list((prev or {}).get("rounds_megapixels_per_second", []))
    if row.get("status") == "ok":
        rates.append(row["megapixels_per_second"])
    best = row
    if prev is not None and prev.get("status") == "ok":
        if row.get("status") != "ok" or prev["megapixels_per_second"] >= row["megapixels_per_second"]:
            best = prev
        if "details" in prev:
            best["details"] = prev["details"]
    best["rounds_megapixels_per_second"] = rates
    return best


def run_row(spec: RowSpec, args: argparse.Namespace, common: dict, models_dir: Path, details: bool = True) -> dict:
    """Skip with a reason, or run one row in a fresh process."""
    for pkg in spec.packages:
        if not has_package(pkg):
            what = "a TFLite interpreter (ai-edge-litert, tflite-runtime or tensorflow)" if pkg == "tflite" else pkg
            return {"status": "skipped", "reason": f"{what} is not installed"}
    child = {**common, "kind": spec.kind, "denoiser": spec.denoiser}
    if spec.kind == "runtime":
        path = models_dir / spec.file.format(name=args.name)
        if not path.is_file():
            return {"status": "skipped", "reason": f"{path} not found"}
        child["path"] = str(path)
    elif spec.kind == "torch":
        if not args.checkpoint:
            return {"status": "skipped", "reason": "no --checkpoint given"}
        if not Path(args.checkpoint).is_file():
            return {"status": "skipped", "reason": f"checkpoint {args.checkpoint} not found"}
        child["path"] = args.checkpoint
    if spec.key == "int8" and details:
        child.update(details=True, op_profile=not args.no_op_profile, python_profile=not args.no_python_profile)
    row = run_child(child, args.timeout)
    if spec.key == "int8" and row.get("status") == "ok":
        row["path"] = child["path"]
    return row


def merge_limits(first: dict | None, second: dict) -> dict:
    """The faster of two limit measurements per model (both kept under "measurements")."""
    runs = [r for r in (first, second) if r is not None]
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return second
    merged = {k: v for k, v in ok[0].items() if k != "models"}
    merged["models"] = {}
    for name in ok[0]["models"]:
        merged["models"][name] = max((r["models"][name] for r in ok), key=lambda m: m["gmacs_per_s"])
    merged["gmacs_per_s"] = merged["models"][merged["limit_model"]]["gmacs_per_s"]
    merged["measurements"] = [{n: m["gmacs_per_s"] for n, m in r["models"].items()} for r in ok]
    return merged


def run_limit(args: argparse.Namespace) -> dict:
    folder = Path(args.limit_dir)
    if not has_package("tflite"):
        return {"status": "skipped", "reason": "no TFLite interpreter installed"}
    if args.rebuild_limit_models:
        if not has_package("tensorflow"):
            return {"status": "skipped", "reason": "--rebuild-limit-models needs tensorflow"}
        from .bench_data import make_int8_limit as gen

        gen.build(folder)
    ok, reason = _limit_files_ok(folder)
    if not ok:
        return {"status": "skipped", "reason": reason}
    return run_child({"kind": "limit", "folder": str(folder), "threads": args.threads, "repeats": args.repeats}, args.timeout)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
