#!/usr/bin/env python3
"""Helper of scripts/arm64-check.sh: inputs, raw model outputs, and the ARM-vs-x86 agreement figure.

Runs on both sides (x86_64 host and the emulated aarch64 root file system) with nothing but the
standard library, numpy, Pillow and edge_runtime (plus whichever TFLite interpreter edge_runtime
picks):

    arm64_compare.py inputs  --sample edge_runtime/samples/sample_noisy.png --out DIR
    arm64_compare.py probe   --model M.tflite --out raw.npz [--inputs DIR]
    arm64_compare.py compare --model M.tflite --reference x86/ --candidate arm/ [--min-agreement 99.9]

`probe` runs a few fixed tiles straight through the interpreter and stores the raw output tensor
(int8/uint8 for the int8 models), so the two machines can be compared in int8 steps before any
tiling, blending or rounding. `compare` compares those raw outputs and the restored images that
`edge-restore` wrote on each side, and passes when at least --min-agreement percent of the values
are identical or within one int8 step (one step of the model's output scale, in 8-bit pixel levels
for the images).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np
from PIL import Image

RANDOM_TILES = 2
IMAGE_EXTS = (".png",)


# ------------------------------------------------------------------------------------------ inputs


def make_inputs(sample: Path, out: Path) -> list[Path]:
    """The check's input images, all lossless PNG so both machines decode identical pixels.

    The bundled noisy sample as is, an odd-sized crop (partial edge tiles), and a grayscale
    version (the gray -> RGB -> gray path).
    """
    out.mkdir(parents=True, exist_ok=True)
    rgb = np.asarray(Image.open(sample).convert("RGB"))
    h, w = rgb.shape[:2]
    odd = rgb[: max(1, h * 7 // 10) | 1, : max(1, w * 9 // 10) | 1]
    gray = np.rint(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).clip(0, 255).astype(np.uint8)
    files = {
        "sample_noisy.png": rgb,
        "sample_odd_crop.png": np.ascontiguousarray(odd),
        "sample_gray.png": gray,
    }
    written = []
    for name, pixels in files.items():
        Image.fromarray(pixels).save(out / name)
        written.append(out / name)
    return written


# ------------------------------------------------------------------------------------------- probe


def _tiles(tile: int, channels: int, inputs: Path | None) -> np.ndarray:
    """Fixed float32 tiles in [0, 1]: the top-left and centre crops of each input, then random tiles."""
    tiles = []
    if inputs is not None:
        for path in sorted(p for p in inputs.iterdir() if p.suffix.lower() in IMAGE_EXTS):
            img = np.asarray(Image.open(path).convert("RGB" if channels == 3 else "L"), dtype=np.float32) / 255.0
            img = img[..., None] if img.ndim == 2 else img
            pad_h, pad_w = max(0, tile - img.shape[0]), max(0, tile - img.shape[1])
            if pad_h or pad_w:
                img = np.pad(img, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
            h, w = img.shape[:2]
            for y, x in ((0, 0), ((h - tile) // 2, (w - tile) // 2)):
                tiles.append(img[y : y + tile, x : x + tile])
    rng = np.random.default_rng(20240611)
    for _ in range(RANDOM_TILES):
        tiles.append(rng.random((tile, tile, channels), dtype=np.float32))
    return np.stack(tiles).astype(np.float32)


def probe(model: Path, out: Path, inputs: Path | None, threads: int | None) -> dict:
    """Run the fixed tiles through the interpreter; save the raw output tensors and where they came from."""
    from edge_runtime.backends import open_backend, quantize, tflite_interpreter_module

    backend = open_backend(model, threads=threads)
    interp = getattr(backend, "interpreter", None)
    if interp is None:
        raise SystemExit(f"probe: {model} is not a TFLite model")
    inp = interp.get_input_details()[0]
    outp = interp.get_output_details()[0]
    tiles = _tiles(backend.tile_size, backend.channels, inputs)
    raw = []
    for tile in tiles:
        x = tile[None]
        if np.dtype(inp["dtype"]).kind in "iu":
            scale, zero = inp["quantization"]
            x = quantize(x, float(scale), int(zero), np.empty(x.shape, inp["dtype"]))
        interp.set_tensor(inp["index"], x.astype(inp["dtype"], copy=False))
        interp.invoke()
        raw.append(interp.get_tensor(outp["index"])[0].copy())
    mod = tflite_interpreter_module()
    info = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "interpreter": mod.name,
        "interpreter_version": _version(mod.name),
        "model": model.name,
        "tiles": int(len(tiles)),
        "out_scale": float(outp["quantization"][0]),
        "out_zero": int(outp["quantization"][1]),
        "out_dtype": np.dtype(outp["dtype"]).name,
    }
    np.savez(out, raw=np.stack(raw), info=json.dumps(info))
    return info


def _version(dist: str) -> str:
    from importlib import metadata

    for name in (dist, dist.replace("_", "-")):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "?"


# ----------------------------------------------------------------------------------------- compare


def _stats(diff: np.ndarray, tol: float) -> dict:
    n = int(diff.size)
    return {
        "values": n,
        "identical_pct": 100.0 * float(np.count_nonzero(diff == 0)) / n if n else 100.0,
        "within_pct": 100.0 * float(np.count_nonzero(diff <= tol)) / n if n else 100.0,
        "max": float(diff.max()) if n else 0.0,
    }


def compare(model: Path, reference: Path, candidate: Path, min_agreement: float, gate: bool = True) -> tuple[bool, list[str]]:
    ref = np.load(reference / "raw.npz")
    cand = np.load(candidate / "raw.npz")
    ref_info, cand_info = json.loads(str(ref["info"])), json.loads(str(cand["info"]))
    ref_raw, cand_raw = ref["raw"], cand["raw"]
    if ref_raw.shape != cand_raw.shape or ref_raw.dtype != cand_raw.dtype:
        return False, [f"raw outputs differ in shape/dtype: {ref_raw.shape} {ref_raw.dtype} vs {cand_raw.shape} {cand_raw.dtype}"]
    quantized = ref_raw.dtype.kind in "iu"
    scale = ref_info["out_scale"] if quantized else 1.0 / 255.0
    # Raw outputs: in int8 steps for quantized models (float models: in 8-bit levels).
    raw_diff = np.abs(ref_raw.astype(np.float64) - cand_raw.astype(np.float64))
    if not quantized:
        raw_diff = raw_diff / scale
    raw = _stats(raw_diff, 1.0)
    # Restored images: in 8-bit pixel levels; one int8 step of the output is scale * 255 levels.
    level_tol = max(1, math.ceil(scale * 255.0 - 1e-9))
    img_diffs, files, problems = [], [], []
    for ref_file in sorted(p for p in reference.glob("images/*") if p.suffix.lower() in IMAGE_EXTS):
        cand_file = candidate / "images" / ref_file.name
        if not cand_file.is_file():
            problems.append(f"missing on the candidate: {cand_file.name}")
            continue
        a, b = np.asarray(Image.open(ref_file)), np.asarray(Image.open(cand_file))
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{ref_file.name}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}")
            continue
        img_diffs.append(np.abs(a.astype(np.int32) - b.astype(np.int32)).ravel())
        files.append(f"{ref_file.name} {a.shape[1]}x{a.shape[0]}{'x' + str(a.shape[2]) if a.ndim == 3 else ' gray'}")
    if not files:
        problems.append("no restored images to compare")
    all_diffs = np.concatenate(img_diffs) if img_diffs else np.zeros(0)
    img = _stats(all_diffs, level_tol)
    from edge_runtime.metrics import psnr

    pooled = psnr(all_diffs, np.zeros_like(all_diffs), peak=255.0) if all_diffs.size else math.inf  # over every pixel
    img_psnr = "identical" if math.isinf(pooled) else f"PSNR {pooled:.2f} dB between the two"
    ok = not problems and raw["within_pct"] >= min_agreement and img["within_pct"] >= min_agreement
    step = f"one int8 step (scale {scale:.6g} = {scale * 255:.3f} levels)" if quantized else "one 8-bit level"
    lines = [
        f"model: {model.name} ({ref_info['out_dtype']} output, scale {ref_info['out_scale']:.6g}, zero point {ref_info['out_zero']})",
        f"reference: {ref_info['machine']} python {ref_info['python']} numpy {ref_info['numpy']} "
        f"{ref_info['interpreter']} {ref_info['interpreter_version']}",
        f"candidate: {cand_info['machine']} python {cand_info['python']} numpy {cand_info['numpy']} "
        f"{cand_info['interpreter']} {cand_info['interpreter_version']}",
        f"raw model outputs: {raw['values']:,} values from {ref_info['tiles']} tiles: identical {raw['identical_pct']:.4f}%, "
        f"within {step} {raw['within_pct']:.4f}%, max difference {raw['max']:g} step(s)",
        f"restored images ({'; '.join(files)}): {img['values']:,} values: identical {img['identical_pct']:.4f}%, "
        f"within +-{level_tol} level(s) {img['within_pct']:.4f}%, max difference {img['max']:g} level(s), {img_psnr}",
    ]
    lines += [f"problem: {p}" for p in problems]
    verdict = "PASS" if ok else ("FAIL" if gate else "FAIL (not gating)")
    lines.append(
        f"agreement: {verdict}: {min(raw['within_pct'], img['within_pct']):.4f}% of values identical or within one int8 "
        f"step (required >= {min_agreement}%)"
    )
    return ok, lines


# ---------------------------------------------------------------------------------------------- cli


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("inputs", help="write the check's input images")
    a.add_argument("--sample", type=Path, required=True)
    a.add_argument("--out", type=Path, required=True)
    b = sub.add_parser("probe", help="raw model outputs of fixed tiles -> .npz")
    b.add_argument("--model", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--inputs", type=Path, default=None)
    b.add_argument("--threads", type=int, default=None)
    c = sub.add_parser("compare", help="agreement of two sides' outputs")
    c.add_argument("--model", type=Path, required=True)
    c.add_argument("--reference", type=Path, required=True)
    c.add_argument("--candidate", type=Path, required=True)
    c.add_argument("--min-agreement", type=float, default=99.9)
    c.add_argument("--gate", action=argparse.BooleanOptionalAction, default=True,
                   help="exit 1 when the agreement is below the bar (--no-gate: report only)")
    args = p.parse_args(argv)
    if args.cmd == "inputs":
        for path in make_inputs(args.sample, args.out):
            print(path)
        return 0
    if args.cmd == "probe":
        info = probe(args.model, args.out, args.inputs, args.threads)
        print(f"probe: {info['tiles']} tiles through {info['interpreter']} {info['interpreter_version']} on {info['machine']}, "
              f"python {info['python']}, numpy {info['numpy']}")
        return 0
    ok, lines = compare(args.model, args.reference, args.candidate, args.min_agreement, args.gate)
    print("\n".join(lines))
    return 0 if ok or not args.gate else 1


if __name__ == "__main__":
    sys.exit(main())
