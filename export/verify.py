"""`edge-restore-parity` / `python -m export.verify`: the parity ladder on real images.

Each stage is compared with the one before it on identical degraded tiles:

  torch float      -> ONNX float      max |error|            (same weights, float maths)
  ONNX float       -> TFLite float    max |error|
  torch fake-quant -> ONNX QDQ        share within 1 int8 step
  ONNX QDQ         -> TFLite INT8     share within 1 int8 step

and PSNR against the clean tiles for every stage, so the INT8 model's cost in dB is visible.

One int8 step is one step of the last int8 tensor before the output, the head's residual
(output = input + residual): one output level (1/255) for a residual on a 1/255 grid, two for the
2/255 grid the residual is pinned to now, where one residual rounding moves the output by two.

An agreement table puts the int8 rungs next to the noise floor of int8 inference itself: the same
.tflite run by TFLite's reference kernels instead of XNNPACK. Two correct int8 implementations
round a handful of values differently (ties, double rounding in fixed-point requantization), and in
a deep network each 1-step difference spreads to its neighbours layer after layer; so the share of
values within one step between ONNX QDQ and TFLite is bounded by what TFLite's own two kernel sets
reach with each other, and the table shows both.
Runtimes are the board runtime's backends (edge_runtime.backends), so what is verified is what
ships. Exit code 0 when every rung passes its threshold, 1 otherwise.

Example:
  python -m export.verify runs/denoise-qat/best.pt models/ --name denoise --images ../shared/datasets/Set14
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge_runtime.backends import dequantize, open_backend, quantize
from edge_runtime.contract import PIXEL_MAX
from edge_runtime.metrics import psnr
if __package__ == "export":  # a checkout: train/ is a top-level package beside export/
    from train.checkpoint import checkpoint_task, load_restorer
    from train.data import dead_leaves, list_images, load_image
    from train.degradations import DegradationConfig, degrade
    from train.quant import set_quant_mode
else:  # the installed wheel: edge_restore.export beside edge_restore.train
    from ..train.checkpoint import checkpoint_task, load_restorer
    from ..train.data import dead_leaves, list_images, load_image
    from ..train.degradations import DegradationConfig, degrade
    from ..train.quant import set_quant_mode

STEP = 1.0 / PIXEL_MAX


@dataclass
class Rung:
    """One comparison of the ladder."""

    reference: str
    candidate: str
    metric: str
    value: float
    threshold: float
    ok: bool


def parity_tiles(image_dir: str | None, tile: int, channels: int, count: int, task: str, seed: int = 0,
                 sigma: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, clean) NHWC tiles: centre crops of real images (dead leaves without a folder),
    with Gaussian noise of `sigma` (0-255 scale) and the task's other degradations."""
    rng = np.random.default_rng(seed)
    clean = []
    paths = list_images(image_dir)[:count] if image_dir else []
    for p in paths:
        img = load_image(p, channels)
        pad_h, pad_w = max(0, tile - img.shape[0]), max(0, tile - img.shape[1])
        img = np.pad(img, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        y, x = (img.shape[0] - tile) // 2, (img.shape[1] - tile) // 2
        clean.append(img[y : y + tile, x : x + tile])
    while len(clean) < count:
        clean.append(dead_leaves(tile, rng, channels))
    deg = DegradationConfig(task=task, sigma_min=sigma, sigma_max=sigma, poisson_prob=0.0)
    degraded = [degrade(c, deg, rng) for c in clean]
    return np.stack(degraded).astype(np.float32), np.stack(clean).astype(np.float32)


def rounded_psnr(out: np.ndarray, clean: np.ndarray) -> float:
    """PSNR of `out` rounded to 8 bits, as a saved image is, so float and int8 outputs compare alike."""
    return psnr(np.round(out * PIXEL_MAX) / PIXEL_MAX, clean)


def run_torch(model: torch.nn.Module, tiles: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.from_numpy(tiles.transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
    return np.clip(out, 0.0, 1.0)


def run_file(path: Path, tiles: np.ndarray) -> np.ndarray:
    backend = open_backend(path, threads=None)
    return np.concatenate([backend.run(t[None]).copy() for t in tiles])


def run_onnx_unfused(path: Path, tiles: np.ndarray) -> np.ndarray:
    """ONNX Runtime with graph optimisations off: Q/DQ pairs run as written (float simulation of
    the int8 graph). With them on, ORT fuses QDQ into its own integer kernels, whose rounding is
    neither the QAT's nor TFLite's, so that is not the reference for either neighbour."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outs = [session.run(None, {name: t[None].transpose(0, 3, 1, 2).copy()})[0] for t in tiles]
    return np.clip(np.concatenate(outs).transpose(0, 2, 3, 1), 0.0, 1.0)


def run_tflite_reference_kernels(path: Path, tiles: np.ndarray) -> np.ndarray:
    """The .tflite on TFLite's reference kernels (no XNNPACK): a second, independent int8 implementation."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
    q = np.empty(inp["shape"], inp["dtype"])
    outs = np.empty((len(tiles), *tiles.shape[1:]), np.float32)
    for i, t in enumerate(tiles):
        interp.set_tensor(inp["index"], quantize(t[None], s_in, z_in, q))
        interp.invoke()
        dequantize(interp.get_tensor(out["index"])[0], s_out, z_out, outs[i])
    return outs


@dataclass
class Agreement:
    """How closely two int8 outputs agree, in output steps (1/255)."""

    reference: str
    candidate: str
    exact: float
    within_1: float
    within_2: float
    max_steps: int
    psnr_between: float
    within_step: float  # within one step of the last int8 tensor (see last_int8_step)


def agreement(outputs: dict[str, np.ndarray], reference: str, candidate: str, last_step: int = 1) -> Agreement:
    steps = np.rint(np.abs(outputs[reference] - outputs[candidate]) / STEP).astype(np.int64)
    return Agreement(reference, candidate, float(np.mean(steps == 0)), float(np.mean(steps <= 1)),
                     float(np.mean(steps <= 2)), int(steps.max()), psnr(outputs[reference], outputs[candidate]),
                     float(np.mean(steps <= last_step)))


def last_int8_step(model: Any) -> int:
    """Output levels per step of the network's last int8 tensor, the head's residual (at least 1)."""
    return max(1, int(round(float(model.head.q_conv.scale) * PIXEL_MAX)))


AGREEMENT_PAIRS = (("torch fake-quant", "ONNX QDQ"), ("ONNX QDQ", "TFLite INT8"),
                   ("ONNX QDQ (ORT int8 kernels)", "TFLite INT8"), ("TFLite INT8 (reference kernels)", "TFLite INT8"))


def _max_error(ref: np.ndarray, out: np.ndarray) -> float:
    return float(np.abs(ref - out).max())


def parity_ladder(checkpoint: str, model_dir: str, name: str, image_dir: str | None = None, count: int = 4,
                  float_tol: float = 1e-4, int8_share: float = 0.999
                  ) -> tuple[list[Rung], dict[str, float], list[Agreement]]:
    """Run every stage on the same tiles; returns the rungs, the PSNR of each stage and the int8
    agreement table (the int8 rungs beside the TFLite reference-vs-XNNPACK noise floor)."""
    model, ckpt = load_restorer(checkpoint)
    folder = Path(model_dir)
    files = {k: folder / f"{name}_{k}" for k in ("float.onnx", "float.tflite", "qdq.onnx", "int8.tflite")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"missing exported files: {', '.join(missing)} (run `python -m export` first)")
    tile = open_backend(files["int8.tflite"]).tile_size
    task = checkpoint_task(ckpt)
    degraded, clean = parity_tiles(image_dir, tile, model.cfg.channels, count, task)

    set_quant_mode(model, "off")
    outputs = {"torch float": run_torch(model, degraded)}
    set_quant_mode(model, "quant")
    outputs["torch fake-quant"] = run_torch(model, degraded)
    outputs["ONNX float"] = run_file(files["float.onnx"], degraded)
    outputs["TFLite float"] = run_file(files["float.tflite"], degraded)
    outputs["ONNX QDQ"] = run_onnx_unfused(files["qdq.onnx"], degraded)
    outputs["ONNX QDQ (ORT int8 kernels)"] = run_file(files["qdq.onnx"], degraded)
    outputs["TFLite INT8"] = run_file(files["int8.tflite"], degraded)
    outputs["TFLite INT8 (reference kernels)"] = run_tflite_reference_kernels(files["int8.tflite"], degraded)

    rungs = []
    for ref, cand in (("torch float", "ONNX float"), ("ONNX float", "TFLite float")):
        err = _max_error(outputs[ref], outputs[cand])
        rungs.append(Rung(ref, cand, "max abs error", err, float_tol, err <= float_tol))
    last_step = last_int8_step(model)
    agreements = [agreement(outputs, ref, cand, last_step) for ref, cand in AGREEMENT_PAIRS]
    for a in agreements[:2]:  # torch fake-quant -> ONNX QDQ -> TFLite INT8
        rungs.append(Rung(a.reference, a.candidate, "share within 1 int8 step", a.within_step, int8_share,
                          a.within_step >= int8_share))
    quality = {"degraded input": psnr(degraded, clean)}
    quality.update({k: rounded_psnr(v, clean) for k, v in outputs.items()})
    return rungs, quality, agreements


def format_report(rungs: list[Rung], quality: dict[str, float], agreements: list[Agreement] = ()) -> str:
    lines = [f"{'reference':<18}{'candidate':<15}{'metric':<27}{'value':>12}{'threshold':>12}  result"]
    for r in rungs:
        lines.append(f"{r.reference:<18}{r.candidate:<15}{r.metric:<27}{r.value:>12.6g}{r.threshold:>12.6g}  "
                     f"{'PASS' if r.ok else 'FAIL'}")
    lines.append("")
    lines.append("PSNR against clean tiles (outputs rounded to 8 bits):")
    lines.extend(f"  {k:<33}{v:7.2f} dB" for k, v in quality.items())
    lines.append(f"  {'TFLite INT8 - torch float':<33}{quality['TFLite INT8'] - quality['torch float']:+7.2f} dB")
    if agreements:
        lines.append("")
        lines.append("int8 agreement (output steps of 1/255; the rungs count one step of the last int8 tensor, the")
        lines.append("head's residual: <=2 for a residual on 2/255; the last row is TFLite against itself, the noise floor):")
        lines.append(f"  {'reference':<33}{'candidate':<14}{'exact':>8}{'<=1':>9}{'<=2':>9}{'max':>5}{'PSNR dB':>9}")
        lines.extend(f"  {a.reference:<33}{a.candidate:<14}{a.exact:>8.4f}{a.within_1:>9.5f}{a.within_2:>9.5f}"
                     f"{a.max_steps:>5d}{a.psnr_between:>9.2f}" for a in agreements)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-restore-parity", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="the QAT checkpoint the files were exported from")
    p.add_argument("model_dir", help="folder with NAME_float.onnx, NAME_qdq.onnx, NAME_float.tflite, NAME_int8.tflite")
    p.add_argument("--name", default="model", help="file name stem used at export (default %(default)s)")
    p.add_argument("--images", default=None, help="folder of clean photos (default: dead-leaves tiles)")
    p.add_argument("--count", type=int, default=4, help="tiles to compare (default %(default)s)")
    p.add_argument("--int8-share", type=float, default=0.999,
                   help="share of output values within one int8 step that the int8 rungs need (default %(default)s)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if not 0.0 < args.int8_share <= 1.0:
        p.error(f"--int8-share must be a fraction in (0, 1], got {args.int8_share}")
    try:
        rungs, quality, agreements = parity_ladder(args.checkpoint, args.model_dir, args.name, args.images, args.count,
                                                   int8_share=args.int8_share)
    except (FileNotFoundError, ValueError) as exc:
        print(f"edge-restore-parity: error: {exc}", file=sys.stderr)
        return 1
    print(format_report(rungs, quality, agreements))
    if args.json:
        Path(args.json).write_text(json.dumps({"rungs": [asdict(r) for r in rungs], "psnr": quality,
                                               "int8_agreement": [asdict(a) for a in agreements]}, indent=1))
    return 0 if all(r.ok for r in rungs) else 1


if __name__ == "__main__":
    sys.exit(main())
