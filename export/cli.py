"""`edge-restore-export` / `python -m export`: every deployable file from one checkpoint.

A QAT checkpoint (from `python -m train --qat`) gives float and QDQ ONNX, float, FP16 and a
fully-int8 TFLite that keeps the QAT scales (plus a scale audit). A float checkpoint gives the
float files and a post-training-quantized int8 TFLite; `--ptq` adds PTQ to a QAT export so the
two can be compared.

Examples:
  python -m export runs/denoise-qat/best.pt --out models --name denoise
  python -m export runs/denoise/best.pt --out out/ptq --ptq-data ../shared/datasets/CBSD432
  python -m export runs/minimal-qat/best.pt --out models --name denoise_minimal --upsample resize   # Coral
"""

from __future__ import annotations

import argparse
import logging
import sys

from edge_runtime.contract import DEFAULT_OVERLAP, DEFAULT_TILE

from .onnx_to_tf import DEFAULT_UPSAMPLE, UPSAMPLE_OPS
from .pipeline import ExportConfig, export_all


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-restore-export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="training checkpoint (.pt) written by edge-restore-train")
    p.add_argument("--out", default="out", help="output folder (default %(default)s)")
    p.add_argument("--name", default="model", help="file name stem: NAME_int8.tflite etc. (default %(default)s)")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE, help="static input side in px (default %(default)s)")
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="tile overlap recorded in the contract")
    p.add_argument("--io", choices=("int8", "uint8", "float32"), default="int8",
                   help="input/output type of the integer models (uint8 suits Coral pipelines; default %(default)s)")
    p.add_argument("--dynamic-onnx", action="store_true", help="also write a dynamic-size float ONNX for ONNX Runtime")
    p.add_argument("--ptq", action="store_true", help="also write a post-training-quantized int8 model")
    p.add_argument("--ptq-data", action="append", default=[], metavar="DIR",
                   help="photos for PTQ calibration (default: dead-leaves images)")
    p.add_argument("--ptq-samples", type=int, default=64, help="calibration tiles for PTQ (default %(default)s)")
    p.add_argument("--upsample", choices=UPSAMPLE_OPS, default=DEFAULT_UPSAMPLE,
                   help="how the TFLite files write nearest x2 upsampling: concat (RESHAPE + CONCATENATION, "
                        "the same values, kept inside XNNPACK on CPUs: one graph partition, a few %% faster) or "
                        "resize (RESIZE_NEAREST_NEIGHBOR, which XNNPACK leaves to TFLite's own kernel; the op "
                        "Coral documents for the Edge TPU; default %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = ExportConfig(checkpoint=args.checkpoint, out_dir=args.out, name=args.name, tile=args.tile, overlap=args.overlap,
                       io_dtype=args.io, dynamic_onnx=args.dynamic_onnx, ptq=args.ptq, ptq_data=args.ptq_data,
                       ptq_samples=args.ptq_samples, upsample=args.upsample)
    try:
        files = export_all(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"edge-restore-export: error: {exc}", file=sys.stderr)
        return 1
    for kind, path in files.items():
        print(f"{kind:<20} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
