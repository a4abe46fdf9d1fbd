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
import os
import sys
import warnings

from edge_runtime.contract import DEFAULT_OVERLAP, DEFAULT_TILE

from .onnx_to_tf import DEFAULT_UPSAMPLE, UPSAMPLE_OPS
from .pipeline import ExportConfig, export_all
from .quiet import QUIET_LEVEL, held_stderr


#: TensorFlow's C++ log level when not verbose: 2 keeps errors, drops INFO and WARNING lines.
QUIET_TF_CPP_LEVEL = str(QUIET_LEVEL)
#: Python loggers of the converters that narrate every pass; kept to errors unless -v.
CHATTY_LOGGERS = ("tensorflow", "absl", "onnxscript", "onnx_ir", "onnx", "torch.onnx", "torch.export", "torch._export")
#: Modules whose Python warnings (deprecations inside the exporters) are hidden unless -v.
CHATTY_MODULES = r"(tensorflow|keras|absl|onnx|onnxscript|onnx_ir|torch\.onnx|torch\.export|torch\._export)(\.|$)"


def configure_logging(verbose: bool) -> None:
    """Our own lines ("wrote ...", the scale audit) always; converter chatter only when `verbose`.

    Must run before TensorFlow is imported: its C++ log level is read once, from the environment.
    A TF_CPP_MIN_LOG_LEVEL the user set is kept.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    logging.getLogger(__package__).setLevel(logging.INFO)  # export or edge_restore.export
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", QUIET_TF_CPP_LEVEL)
    with held_stderr():  # the import's own C++ lines ignore that level
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass  # the conversion step names what is missing
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging  # comes with TensorFlow; its Python side logs at INFO
    except ImportError:
        pass
    else:
        absl_logging.set_verbosity(absl_logging.ERROR)
    warnings.filterwarnings("ignore", module=CHATTY_MODULES)


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
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also show the converters' own log (TensorFlow, ONNX, torch exporter); default: only "
                        "this tool's lines, warnings and errors")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
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
