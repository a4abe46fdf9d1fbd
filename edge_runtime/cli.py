"""`edge-restore`: restore photos on the board with a TFLite (or ONNX) restoration model, or a classic method."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from . import errors
from .api import MAX_STRENGTH, RestorationModel, check_strength, list_models, load_model, models_dirs, resolve_model
from .deblur import DEFAULT_ITERATIONS, BlindSettings, DeblurInfo, PnPSchedule, deblur_with_info, refuse_deblur_prior
from .ensemble import VIEW_COUNTS, check_views
from .backends import DEVICES
from .batch_files import (
    COMPARE_SUFFIX,
    OUTPUT_SUFFIX,
    Job,
    check_manifest_path,
    check_outputs,
    expand_inputs,
    is_batch,
    plan_outputs,
    preflight_outputs,
    remove_stale_temps,
)
from .classic import CLASSIC_METHODS, RL_ITERATIONS, estimate_noise_sigma, import_opencv, restore_classic
from .kernels import KernelSpec, kernel_from_spec, parse_kernel_spec
from .errors import EdgeRestoreError, InputImageError, MissingInputError, ModelError, OutputWriteError, UsageError
from .imageio import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_PNG_LEVEL,
    DEFAULT_QUALITY,
    Picture,
    atomic_write,
    read_image,
    side_by_side,
    write_image,
)
from .progress import ProgressBar
from .stop_signals import Interrupted, StopSignals

PROG = "edge-restore"
#: --json - : the manifest goes to stdout (and the per-file lines to stderr).
STDOUT = Path("-")
log = logging.getLogger("edge_runtime")

DESCRIPTION = """\
Restore (denoise / deblur) photos with an edge-restore model: a fully-int8 or float .tflite
(or .onnx) file carrying the edge-restore contract. Any image size is run through the model's
fixed tile with overlapping, smoothly blended tiles, in bounded memory.

Image rules: EXIF orientation is applied (and the tag cleared); ICC profile and EXIF are kept;
16-bit PNG/TIFF stay 16-bit; grayscale stays grayscale (gray replicated to RGB for the model,
averaged back); alpha is passed through untouched; palette and CMYK images become RGB; of a
multi-frame file (GIF, APNG, multi-page TIFF) only the first frame is restored, with a warning.

Without a model, --classic restores with a classic method instead: Wiener or Richardson-Lucy
deconvolution with a known blur kernel (numpy only), or OpenCV non-local means denoising. It is a
baseline or a fallback: the whole image is processed at once (about 160-185 MiB of memory per RGB
megapixel, where the tiled models stay bounded), and the same image rules apply.
"""

EPILOG = f"""\
outputs:
  By default each INPUT.ext is written beside it as INPUT{OUTPUT_SUFFIX}.ext (GIF -> .png).
  -o is a file for a single input, or a directory for several (created if missing; folder
  inputs keep their sub-folder layout). Inputs are never overwritten; an existing output is
  refused unless --overwrite, or skipped as already done with --resume. Directory and glob
  inputs skip hidden files, earlier *{OUTPUT_SUFFIX} / *{COMPARE_SUFFIX} outputs, and (with a
  warning) FIFOs, devices and broken or looping symbolic links. Writes are atomic (temporary
  file + rename): an output name holds a complete image or nothing. Output folders are checked
  for writing before the model is loaded.

interrupting:
  SIGINT (Ctrl-C) or SIGTERM stops a batch at the next tile (with --classic: once the image in
  progress is computed): the file in progress is abandoned (nothing is written for it), the
  --json manifest is still written (status ok / error / skipped / interrupted / pending), and
  the exit code is 130 (SIGINT) or 143 (SIGTERM). Rerun the same command with --resume to
  finish: finished files are skipped. A second signal stops at once. Temporary files left by a
  run that was killed outright are removed by the next run.

exit codes (docs/exit-codes.md):
  0 all ok   1 usage error   2 partial batch failure (some inputs failed)
  65 bad input image or --kernel file   66 missing input or --kernel file   73 cannot write output
  78 bad model or device, or OpenCV missing for --classic nlm / nlm-lab
  130 interrupted by SIGINT   143 interrupted by SIGTERM
  (a single input, or a batch in which every input failed for one reason, exits with that
  reason's code; a manifest that cannot be written makes an otherwise clean run exit 73)

examples:
  {PROG} --model denoise photo.jpg                      # -> photo{OUTPUT_SUFFIX}.jpg
  {PROG} --model models/denoise_int8.tflite shots/ -r -o clean/ --json run.json
  {PROG} --model denoise --device edgetpu --cpu-fallback --benchmark --compare img.png
  {PROG} --list-models
  {PROG} --model denoise --strength 0.7 portrait.jpg     # lighter denoising, more texture kept
  {PROG} --model denoise_real --ensemble 2 --pixel-shuffle phone.jpg   # camera noise, 4 passes, cleaner
  {PROG} --model deblur_prior --kernel k.npy --noise-sigma 2.55 photo.png -o out.png   # deblur, known kernel
  {PROG} --model deblur_prior --kernel motion:15,30 belt.png   # linear motion: belt speed x exposure
  {PROG} --model deblur_prior --kernel estimate --save-kernel k.png shaky.jpg   # blind deblurring
  {PROG} --classic wiener --kernel k.npy --noise-sigma 2.55 photo.jpg -o out.png   # no model needed
  {PROG} --classic rl --kernel shake.png --rl-iterations 20 photos/ -o restored/
  {PROG} --classic nlm noisy.png          # OpenCV; noise sigma estimated per image and printed
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 1, not argparse's 2
        self.print_usage(sys.stderr)
        self.exit(errors.EXIT_USAGE, f"{PROG}: error: {message}\n")


def int_at_least(minimum: int):
    """argparse type: an integer >= minimum, with a one-line message otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value

    return parse


_positive_int = int_at_least(1)
_non_negative_int = int_at_least(0)


def _threads(text: str) -> int:
    """argparse type: a thread count in [1, MAX_THREADS] (above 4 per core it is capped, with a warning)."""
    from .backends import MAX_THREADS

    value = _positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"{text!r} must be at most {MAX_THREADS}")
    return value


def _noise_sigma(text: str) -> float:
    """argparse type: a finite noise std >= 0 on the 0-255 scale."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0 (0-255 scale)")
    return value


def _strength(text: str) -> float:
    """argparse type: a restoration strength in [0, MAX_STRENGTH]."""
    try:
        return check_strength(float(text))
    except (ValueError, UsageError):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number between 0 and {MAX_STRENGTH:g}") from None


def _views(text: str) -> int:
    """argparse type: a geometric self-ensemble view count."""
    try:
        return check_views(int(text))
    except (ValueError, UsageError):
        raise argparse.ArgumentTypeError(f"{text!r} must be one of {', '.join(map(str, VIEW_COUNTS))}") from None


def _png_level(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 9:
        raise argparse.ArgumentTypeError(f"PNG level must be an integer 0-9, got {text!r}")
    return value


def _quality(text: str) -> int:
    value = _positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 1 and 100")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, directories or glob patterns (quote globs)")
    p.add_argument(
        "-m", "--model", metavar="PATH|NAME",
        help="model file (.tflite or .onnx) or a shipped short name, e.g. 'denoise' -> "
        "models/denoise_int8.tflite (folders searched: $EDGE_RESTORE_MODELS, then the models shipped with the package)",
    )
    p.add_argument("-o", "--output", metavar="PATH", help="output file (single input) or directory (several inputs)")
    p.add_argument(
        "--classic", choices=CLASSIC_METHODS, metavar="METHOD",
        help="restore without a model: wiener or rl (Wiener / Richardson-Lucy deconvolution with a known "
        "blur kernel, given by --kernel), nlm or nlm-lab (OpenCV non-local means denoising on RGB / in "
        "CIELAB; pip install opencv-python-headless). The whole image is processed at once: about "
        "160-185 MiB per RGB megapixel, unlike the tiled models; Ctrl-C takes effect once the image in "
        "progress is computed (that file is then abandoned). E.g. --classic wiener --kernel k.npy --noise-sigma 2.55",
    )
    p.add_argument(
        "--kernel", metavar="SPEC",
        help="the blur kernel: with a denoiser --model it means plug-and-play deconvolution (the model is the "
        "image prior: deblur_prior was trained for it, any denoiser works; docs/deblur.md), with --classic wiener or rl the classic deconvolution. SPEC is a 2-D "
        ".npy array or a .png image (luminance, non-negative; normalised to sum 1 and centred on pixel "
        "((h-1)//2, (w-1)//2)); motion:LENGTH,ANGLE (linear motion in px and degrees counter-clockwise, e.g. "
        "a conveyor belt's speed x exposure); disk:RADIUS (defocus); gaussian:SIGMA; estimate (blind, "
        f"estimated from each image's most detailed {BlindSettings.crop} px crop, a few seconds; the deconvolution then "
        f"assumes at least {BlindSettings.sigma_floor:g}/255 noise, as an estimated kernel is never exact); "
        "motion:estimate (only a linear motion's length and angle estimated). "
        "E.g. --kernel shake.png, --kernel motion:15,30",
    )
    p.add_argument(
        "--iterations", type=_positive_int, default=None, metavar="N",
        help=f"with --model and --kernel: plug-and-play iterations, one denoiser pass each (default "
        f"{DEFAULT_ITERATIONS}; fewer is faster, see docs/deblur.md)",
    )
    p.add_argument(
        "--save-kernel", metavar="PATH",
        help="with --kernel: write the kernel used (estimated or built from its parameters) to PATH (.npy "
        "array, or .png scaled to its maximum); one input only",
    )
    p.add_argument(
        "--strength", type=_strength, default=None, metavar="S",
        help=f"with --model (denoising): how much of the model's correction to apply, output = input + S x "
        f"(model - input); 1 (default) is the model as trained, 0.5 keeps more texture (faces), 1.3 smooths "
        f"more (sky); 0 to {MAX_STRENGTH:g}",
    )
    p.add_argument(
        "--ensemble", type=_views, default=None, metavar="N",
        help=f"with --model (denoising): average the model over N flips/transposes of every tile "
        f"({', '.join(map(str, VIEW_COUNTS))}; N model passes; default 1). Slower, a little cleaner on any noise",
    )
    p.add_argument(
        "--pixel-shuffle", action="store_true",
        help="with --model (denoising): also restore the image's four 2x2-subsampled sub-images and average them "
        "in (twice the passes, and one more image in memory). For camera noise (--model denoise_real), "
        "which is spatially correlated; it hurts on white noise. See models/denoise_real.md",
    )
    p.add_argument(
        "--noise-sigma", type=_noise_sigma, default=None, metavar="S",
        help="with --classic wiener, nlm or nlm-lab, or --model with --kernel: the noise std on the 0-255 scale for every image "
        "(2.55 = 1%% of full range; default: estimated per image and printed). E.g. --noise-sigma 25",
    )
    p.add_argument(
        "--rl-iterations", type=_non_negative_int, default=None, metavar="N",
        help=f"with --classic rl: iterations, the method's only regulariser (more sharpen further but "
        f"amplify noise; default {RL_ITERATIONS}). E.g. --rl-iterations 20",
    )
    p.add_argument("-r", "--recursive", action="store_true", help="descend into sub-directories of directory inputs ('**' in globs)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (inputs are never overwritten)")
    p.add_argument(
        "--resume", "--skip-existing", dest="resume", action="store_true",
        help="skip inputs whose outputs already exist, reporting them as 'skipped (already done)': "
        "rerun an interrupted batch with it",
    )
    p.add_argument("--quality", type=_quality, default=DEFAULT_QUALITY, metavar="Q", help=f"JPEG/WebP quality 1-100 (default {DEFAULT_QUALITY})")
    p.add_argument(
        "--png-level", type=_png_level, default=DEFAULT_PNG_LEVEL, metavar="N",
        help=f"PNG compression level 0-9 (default {DEFAULT_PNG_LEVEL}: about 5x faster to write than 6, files about 10%% larger; "
        "see docs/performance.md)",
    )
    p.add_argument(
        "--max-pixels", type=_positive_int, default=DEFAULT_MAX_PIXELS, metavar="N",
        help=f"refuse images with more pixels than this, checked before decoding (decompression bombs; default {DEFAULT_MAX_PIXELS:,})",
    )
    p.add_argument("--threads", type=_threads, default=None, metavar="N", help="interpreter (or, with --classic nlm / nlm-lab, OpenCV) threads (default: all CPU cores)")
    p.add_argument("--tile-overlap", type=_non_negative_int, default=None, metavar="N", help="overlap between tiles in pixels (default: the model contract's)")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="cpu (default) or edgetpu (Coral, via libedgetpu)")
    p.add_argument("--cpu-fallback", action="store_true", help="with --device edgetpu: run on the CPU, with a warning, when no Edge TPU is found (default: fail)")
    p.add_argument("--compare", action="store_true", help=f"also write a side-by-side image <stem>{COMPARE_SUFFIX}<ext>, twice the width, labelled 'before'/'after' in the top-left corners")
    p.add_argument("--benchmark", action="store_true", help="report latency per tile, megapixels/s and peak memory")
    p.add_argument("--json", metavar="PATH", help="write a JSON manifest: per file input, output, status, error, seconds ('-': to stdout)")
    p.add_argument("--list-models", action="store_true", help="list the *.tflite models found by short name (task, size, INT8 PSNR from the model card, path), then exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no per-file output lines")
    return p




class _Lines:
    """Per-file lines on stdout (or stderr) that cannot abort a batch.

    A path is written as its bytes (a file name that is not UTF-8 is printed as it is, whatever
    PYTHONIOENCODING says). When the reader has gone (`| head -c1`: EPIPE) or the stream fails,
    the stream is pointed at /dev/null and the batch goes on: the files and the manifest matter,
    not the lines.
    """

    def __init__(self, stream) -> None:
        self.stream = stream

    def path(self, path: Path) -> bool:
        return self._write(os.fsencode(path) + b"\n")

    def text(self, text: str) -> bool:
        return self._write(text.encode("utf-8", "surrogateescape"))

    def _write(self, data: bytes) -> bool:
        try:
            self.stream.flush()
            buffer = getattr(self.stream, "buffer", None)
            if buffer is None:
                self.stream.write(data.decode("utf-8", "replace"))
            else:
                buffer.write(data)
            self.stream.flush()
            return True
        except (OSError, ValueError):
            try:  # keep the interpreter's exit flush from failing (and exiting 120) too
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):
                pass
            return False


def out_of_memory(job: Job) -> InputImageError:
    """The error (65) for a MemoryError while a job ran: what was being done, and to how big an image.

    Not "lower --max-pixels": that limit is checked from the header, and an image under it (a
    1 x 300000 panorama, issue 18) ran out of memory for other reasons than its pixel count.
    """
    return InputImageError(f"{job.input}: out of memory while {job.stage or 'processing it'}: "
                           "this machine has too little free memory for it")


def _read_for(job: Job, max_pixels: int) -> Picture:
    """read_image for a job, recording the stages an out-of-memory error names."""
    job.stage = "decoding it"
    picture = read_image(job.input, max_pixels=max_pixels)
    mib = (picture.color.nbytes + (picture.alpha.nbytes if picture.alpha is not None else 0)) / 2**20
    job.stage = f"restoring its {picture.width}x{picture.height} pixels ({mib:.0f} MiB decoded)"
    return picture


def _fail_unexpected(job: Job, exc: BaseException) -> None:
    """Fail a job for any exception from reading, restoring or writing it (a bad file must not stop the batch)."""
    if isinstance(exc, EdgeRestoreError):
        job.fail(exc)
    elif isinstance(exc, MemoryError):
        job.fail(out_of_memory(job))
    else:
        job.fail(EdgeRestoreError(f"{job.input}: unexpected {type(exc).__name__}: {exc}"))
        job.exit_code = errors.EXIT_BAD_IMAGE


#: Hands a finished image's write (a callable) to the batch's writer with the image's decoded bytes;
#: None writes at once. See BackgroundWriter.
WriteHandoff = Callable[["Job", Callable[[], None], int], None]


def restore_file(
    model: RestorationModel, job: Job, quality: int, max_pixels: int, progress=None,
    png_level: int = DEFAULT_PNG_LEVEL, handoff: WriteHandoff | None = None,
) -> None:
    """Read, restore and write one job's image (and its comparison image).

    Without a comparison image the input pixels are not needed once restored, so they are
    restored in place (the tiler keeps a copy of the few rows that must be read after being
    overwritten): one image in memory instead of two (issue 4: a 48 MP photo on a board).
    """
    picture: Picture = _read_for(job, max_pixels)
    restored = picture.color if job.compare is None else np.empty_like(picture.color)
    model.restore_into(picture.color, restored, progress)  # its tiler's band buffers are freed before writing
    _write_or_hand_off(job, picture, restored, quality, png_level, handoff)


@dataclass(frozen=True)
class ClassicRun:
    """The settings of a --classic run, its kernel loaded and checked once before the batch."""

    method: str
    kernel: np.ndarray | None = None
    kernel_path: str | None = None
    sigma: float | None = None  # None: estimated per image
    iterations: int = RL_ITERATIONS

    @property
    def label(self) -> str:
        """What the manifest and the benchmark name in place of a model path."""
        return f"classic:{self.method}"

    @property
    def uses_sigma(self) -> bool:
        return self.method != "rl"  # Richardson-Lucy is regularised by its iteration count instead

    def manifest(self) -> dict:
        return {
            "method": self.method,
            "kernel": self.kernel_path,
            "kernel_shape": list(self.kernel.shape) if self.kernel is not None else None,
            "noise_sigma": self.sigma,  # null: estimated per image (each file's noise_sigma)
            "rl_iterations": self.iterations if self.method == "rl" else None,
        }


def prepare_classic(args: argparse.Namespace) -> ClassicRun:
    """Load the --kernel and import OpenCV (for NLM) once, so a bad setup fails before any image is read.

    Raises KernelError (65) for a bad kernel file, MissingInputError (66) for a missing one and
    DependencyError (78, naming the pip package) when NLM is asked for without OpenCV.
    """
    kernel = None
    if args.kernel is not None:
        spec = parse_kernel_spec(args.kernel)
        if spec.blind:
            raise UsageError(f"--kernel {args.kernel} (blind estimation) goes with a denoiser --model "
                             "(plug-and-play); --classic needs a known kernel")
        kernel = kernel_from_spec(spec)
    if args.classic in ("nlm", "nlm-lab"):
        cv2 = import_opencv()
        if args.threads is not None:
            cv2.setNumThreads(args.threads)
    return ClassicRun(
        method=args.classic, kernel=kernel, kernel_path=args.kernel, sigma=args.noise_sigma,
        iterations=RL_ITERATIONS if args.rl_iterations is None else args.rl_iterations,
    )


@dataclass(frozen=True)
class PnPRun:
    """The settings of a --model --kernel run: the kernel spec (a known kernel loaded once, before
    the batch), the noise sigma (None: estimated per image) and the schedule."""

    spec: KernelSpec
    kernel: np.ndarray | None  # None: estimated from each image
    sigma: float | None
    schedule: PnPSchedule
    save_kernel: Path | None = None

    def manifest(self) -> dict:
        return {"kernel": self.spec.describe(), "noise_sigma": self.sigma, "iterations": self.schedule.iterations}


def prepare_pnp(args: argparse.Namespace) -> PnPRun:
    """Parse --kernel and load a known kernel once, so a bad kernel fails (65/66) before any image."""
    spec = parse_kernel_spec(args.kernel)
    kernel = None if spec.blind else kernel_from_spec(spec)
    iterations = DEFAULT_ITERATIONS if args.iterations is None else args.iterations
    return PnPRun(spec, kernel, args.noise_sigma, PnPSchedule(iterations=iterations),
                  Path(args.save_kernel) if args.save_kernel else None)


def save_kernel(path: Path, kernel: np.ndarray) -> None:
    """Write a kernel as .npy (exact float64) or .png (8-bit, scaled to its maximum), atomically."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        import io

        buf = io.BytesIO()
        np.save(buf, kernel.astype(np.float64), allow_pickle=False)
        atomic_write(path, lambda fh: fh.write(buf.getvalue()))
    elif suffix == ".png":
        from PIL import Image
        import io

        buf = io.BytesIO()
        Image.fromarray(np.rint(kernel / kernel.max() * 255).astype(np.uint8)).save(buf, format="PNG")
        atomic_write(path, lambda fh: fh.write(buf.getvalue()))
    else:
        raise UsageError(f"--save-kernel {path}: use a .npy or .png file name")


def restore_file_pnp(
    model: RestorationModel, run: PnPRun, job: Job, quality: int, max_pixels: int, progress=None,
    png_level: int = DEFAULT_PNG_LEVEL, handoff: WriteHandoff | None = None,
) -> DeblurInfo:
    """Read, deconvolve (plug-and-play, the model as the prior) and write one job's image."""
    picture: Picture = _read_for(job, max_pixels)
    kernel = run.kernel if run.kernel is not None else run.spec
    restored, info = deblur_with_info(picture.color, kernel, model, run.sigma, schedule=run.schedule,
                                      progress=progress)
    if run.kernel is not None:  # loaded once before the batch: record where it came from, not "array"
        info.kernel_source = run.spec.describe()
    if info.noise_sigma_estimated:
        job.noise_sigma = info.noise_sigma
    job.deblur = info.manifest()
    if run.save_kernel is not None:
        save_kernel(run.save_kernel, info.kernel)
    _write_or_hand_off(job, picture, restored, quality, png_level, handoff)
    return info


def restore_file_classic(
    run: ClassicRun, job: Job, quality: int, max_pixels: int, progress=None,
    png_level: int = DEFAULT_PNG_LEVEL, handoff: WriteHandoff | None = None,
) -> None:
    """Read, restore with a classic method and write one job's image (and its comparison image).

    Without --noise-sigma the sigma is estimated here (not inside restore_classic) so that it can be
    reported and recorded in job.noise_sigma. The method computes the whole image in one call, so
    `progress` is called once, after it: a stop request abandons the file there, before writing,
    as the tiled path abandons it at its next tile.
    """
    picture: Picture = _read_for(job, max_pixels)
    sigma = run.sigma
    if sigma is None and run.uses_sigma:
        try:
            sigma = job.noise_sigma = estimate_noise_sigma(picture.color)
        except ValueError as exc:  # an image smaller than 2x2 has no noise band to measure
            raise InputImageError(f"{job.input}: {exc}; give --noise-sigma") from None
    restored = restore_classic(picture.color, run.method, run.kernel, sigma, iterations=run.iterations)
    if progress is not None:
        progress(1, 1)
    _write_or_hand_off(job, picture, restored, quality, png_level, handoff)


def _write_or_hand_off(
    job: Job, picture: Picture, restored: np.ndarray, quality: int, png_level: int, handoff: WriteHandoff | None
) -> None:
    def write() -> None:
        write_restored(job, picture, restored, quality, png_level)

    if handoff is None:
        write()
    else:
        handoff(job, write, restored.nbytes)


def write_restored(job: Job, picture: Picture, restored: np.ndarray, quality: int, png_level: int = DEFAULT_PNG_LEVEL) -> None:
    """Write `restored` pixels with `picture`'s alpha and metadata to job.output (and the comparison image).

    Shared by the model and the classic paths so both write alike: atomic writes, output folders
    created on demand, alpha, ICC/EXIF and bit depth passed through from the input picture.
    """
    result = replace(picture, color=restored)
    assert job.output is not None
    job.stage = f"writing {job.output.name} ({picture.width}x{picture.height} pixels)"
    try:
        job.output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(f"cannot create folder {job.output.parent}: {exc.strerror or exc}") from None
    write_image(job.output, result, quality=quality, png_level=png_level)
    if job.compare is not None:
        write_image(job.compare, side_by_side(picture, result), quality=quality, png_level=png_level)
    job.megapixels = picture.height * picture.width / 1e6


def peak_memory_mib() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _print_models() -> int:
    infos = list_models()
    if not infos:
        print(f"no *.tflite models in {', '.join(str(d) for d in models_dirs())}")
        return errors.EXIT_OK
    print(f"{'name':<28} {'task':<9} {'tile':>5} {'quant':<9} {'size':>7}  {'INT8 PSNR (model card)':<34} path")
    for info in infos:
        c = info.contract
        task, tile, quant = (c.task, c.tile_size, c.quantization) if c is not None else ("-", "-", "-")
        note = f"  ({info.error})" if c is None else ""
        size = f"{info.size / 1000:.0f} KB"
        print(f"{info.path.stem:<28} {task:<9} {tile:>5} {quant:<9} {size:>7}  {info.card.psnr or '-':<34} {info.path}{note}")
    return errors.EXIT_OK


class _WarningFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{PROG}: warning: {record.getMessage()}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `edge-restore` console script; returns the exit code."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_WarningFormatter())
    logger = logging.getLogger("edge_runtime")
    logger.addHandler(handler)
    old_propagate, logger.propagate = logger.propagate, False
    try:
        return _main(argv)
    except SystemExit as exc:  # argparse: --help (0) and usage errors (1)
        return exc.code if isinstance(exc.code, int) else errors.EXIT_USAGE
    except EdgeRestoreError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `--list-models | head`: the reader left; no traceback, no flush error at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by the signal
    finally:
        logger.removeHandler(handler)
        logger.propagate = old_propagate


def check_method_options(args: argparse.Namespace) -> str | None:
    """The usage error of --model / --classic and the options that belong to only one of them, or None.

    Options that would be silently ignored are refused instead, so a run never quietly does
    something other than what its command line says.
    """
    if args.classic and args.model:
        return "--classic and --model exclude each other"
    if not args.classic and not args.model:
        return "--model or --classic is required (a .tflite/.onnx path or a short name, see --list-models; or a classic method)"
    if args.save_kernel is not None and args.kernel is None:
        return "--save-kernel goes with --kernel"
    if not args.classic:
        if args.kernel is None:
            given = [flag for flag, value in (("--noise-sigma", args.noise_sigma), ("--iterations", args.iterations))
                     if value is not None]
            if given:
                return f"{given[0]} goes with --kernel (deconvolution) or --classic"
        elif args.strength is not None:
            return "--strength scales a denoiser's correction; with --kernel use --iterations or --noise-sigma"
        elif args.ensemble is not None or args.pixel_shuffle:
            return "--ensemble and --pixel-shuffle go with denoising (--model without --kernel)"
        if args.rl_iterations is not None:
            return "--rl-iterations goes with --classic rl"
        return None
    if args.strength is not None:
        return "--strength goes with --model"
    if args.ensemble is not None or args.pixel_shuffle:
        return "--ensemble and --pixel-shuffle go with --model"
    if args.iterations is not None:
        return "--iterations goes with --model and --kernel (plug-and-play); --classic rl uses --rl-iterations"
    method = args.classic
    deconvolution = method in ("wiener", "rl")
    if deconvolution and args.kernel is None:
        return f"--classic {method} needs the blur kernel: --kernel SPEC (.npy/.png file, motion:L,A, disk:R, ...)"
    if not deconvolution and args.kernel is not None:
        return f"--kernel goes with --classic wiener or rl, not {method} (which denoises)"
    if method == "rl" and args.noise_sigma is not None:
        return "--noise-sigma has no effect with --classic rl (its iterations regularise it: --rl-iterations)"
    if method != "rl" and args.rl_iterations is not None:
        return f"--rl-iterations goes with --classic rl, not {method}"
    if args.device != "cpu":
        return f"--device {args.device} runs models; --classic runs on the CPU"
    if args.tile_overlap is not None:
        return "--tile-overlap is for the tiled models; --classic processes the whole image at once"
    if deconvolution and args.threads is not None:
        return f"--threads has no effect with --classic {method} (numpy's FFT runs on one thread)"
    return None


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_models:
        return _print_models()
    usage = check_method_options(args)
    if usage:
        parser.error(usage)
    if not args.inputs:
        parser.error("no INPUT given")
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite exclude each other")
    if args.model:
        model_path = resolve_model(args.model)  # a missing model is reported (78) before anything else
        if not model_path.is_file():
            raise ModelError(f"model not found: {model_path}" if not model_path.exists() else f"model is not a file: {model_path}")
        args.model = str(model_path)
    inputs = expand_inputs(args.inputs, args.recursive)
    if not inputs:
        raise MissingInputError(f"no images found in {' '.join(args.inputs)}")
    jobs, usage = plan_outputs(inputs, args.output, args.compare, batch=is_batch(args.inputs))
    if usage:
        parser.error(usage)
    check_outputs(jobs, args.overwrite, args.resume)
    manifest_path = None if not args.json else STDOUT if args.json == "-" else Path(args.json)
    file_manifest = manifest_path if manifest_path not in (None, STDOUT) else None
    if file_manifest is not None:
        check_manifest_path(file_manifest, jobs)
    # Cheap checks first: no model is loaded for a run that cannot write anything.
    preflight_outputs(jobs, file_manifest)
    remove_stale_temps([d for j in jobs for d in (j.output, j.compare) if d is not None]
                       + ([file_manifest] if file_manifest else []))
    if args.save_kernel is not None and len(jobs) > 1:
        parser.error("--save-kernel writes one kernel: give one input")
    classic = prepare_classic(args) if args.classic else None  # as cheap as the checks above: before any image
    pnp = prepare_pnp(args) if args.model and args.kernel is not None else None

    with StopSignals() as stop:
        try:
            return _run_jobs(args, jobs, manifest_path, stop, classic, pnp)
        except Interrupted as exc:  # a signal while the model loads, or a second one
            print(f"{PROG}: interrupted by {exc.name}", file=sys.stderr)
            return exc.exit_code


#: Largest decoded image whose write may overlap the next image's read and restore: a 12 MP RGB
#: 8-bit photo (36 MB) fits. Above it the write runs before the next image is read, so a batch of
#: large images keeps the single-image memory bound (2.5 x the image + 150 MB, docs/performance.md).
OVERLAP_MAX_BYTES = 40_000_000


class BackgroundWriter:
    """Encodes and writes one finished image on a background thread while the next is read and restored.

    A queue of one: handing over a write first waits for the previous one, so at most one
    restored image is held beyond the one being restored, and only one of at most
    OVERLAP_MAX_BYTES. Pillow's and zlib's encoders release the GIL, so the write runs beside
    the interpreter. Each finished job goes to `on_done(job, error)` in order, on the caller's thread.
    """

    def __init__(self, on_done: Callable[[Job, BaseException | None], None]) -> None:
        self._on_done = on_done
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[Job, Future] | None = None

    def hand_off(self, job: Job, write: Callable[[], None], nbytes: int) -> None:
        self.drain()
        if nbytes > OVERLAP_MAX_BYTES:
            self._finish(job, write)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-restore-write")
        self._pending = (job, self._pool.submit(write))

    def drain(self) -> None:
        """Wait for the pending write (if any) and report it."""
        if self._pending is not None:
            job, future = self._pending
            self._pending = None
            self._finish(job, future.result)

    def _finish(self, job: Job, run: Callable[[], object]) -> None:
        try:
            run()
        except Exception as exc:  # reported per job, like any failure of a file
            self._on_done(job, exc)
        else:
            self._on_done(job, None)

    def close(self) -> None:
        self.drain()
        if self._pool is not None:
            self._pool.shutdown()


def _run_jobs(
    args: argparse.Namespace, jobs: list[Job], manifest_path: Path | None, stop: StopSignals,
    classic: ClassicRun | None = None, pnp: PnPRun | None = None,
) -> int:
    pending = [j for j in jobs if j.status == "pending"]
    model = None
    try:
        if pending and classic is None:
            model = load_model(args.model, threads=args.threads, device=args.device, cpu_fallback=args.cpu_fallback,
                               overlap=args.tile_overlap, strength=1.0 if args.strength is None else args.strength,
                               views=args.ensemble or 1, pixel_shuffle=args.pixel_shuffle)
            if pnp is None:
                refuse_deblur_prior(model)
        stop.check()
    except Interrupted as exc:  # the manifest is promised whenever a run is interrupted: every file pending
        stop.finishing = True
        if manifest_path is not None:
            _write_manifest(manifest_path, args.model, None, jobs, 0.0, None, exc, classic, pnp, args.strength)
        raise
    out = _Lines(sys.stderr if manifest_path == STDOUT else sys.stdout)

    show = not args.quiet
    bar = ProgressBar(len(jobs), enabled=None if (show and len(jobs) > 1) else False)
    started = time.perf_counter()
    interrupted: Interrupted | None = None
    job_started: dict[int, float] = {}
    index_of = {id(j): i for i, j in enumerate(jobs)}

    def report(job: Job, index: int) -> None:
        """A job is done (written, or failed): its line, in input order."""
        job.seconds = time.perf_counter() - job_started.pop(index, time.perf_counter())
        if job.status == "error":
            bar.close()  # keep the message on its own line
            print(f"{PROG}: error: {job.error}", file=sys.stderr)
        else:
            if show and job.noise_sigma is not None and pnp is None:
                bar.close()
                print(f"{PROG}: {job.input}: estimated noise sigma {job.noise_sigma:.2f} (0-255 scale; "
                      "set it with --noise-sigma)", file=sys.stderr)
            if show and not bar.enabled:
                out.path(job.output)
                if job.compare is not None:
                    out.path(job.compare)
        bar.update(index + 1, job.input.name)

    def written(job: Job, error: BaseException | None) -> None:
        if error is None:
            job.status = "ok"
        else:
            _fail_unexpected(job, error)
        report(job, index_of[id(job)])

    writer = BackgroundWriter(written)
    try:
        for index, job in enumerate(jobs):
            if job.status == "error":
                writer.drain()
                print(f"{PROG}: error: {job.error}", file=sys.stderr)
                continue
            if job.status == "skipped":
                writer.drain()
                if show:
                    print(f"{PROG}: skipped, already done: {job.input} -> {job.output}", file=sys.stderr)
                continue
            job_started[index] = time.perf_counter()

            def tile_progress(done: int, total: int, index: int = index, name: str = job.input.name) -> None:
                stop.check()
                bar.update(index + done / total, name)

            try:
                stop.check()
                if classic is not None:
                    restore_file_classic(classic, job, args.quality, args.max_pixels, progress=tile_progress,
                                         png_level=args.png_level, handoff=writer.hand_off)
                elif pnp is not None:
                    assert model is not None
                    info = restore_file_pnp(model, pnp, job, args.quality, args.max_pixels, progress=tile_progress,
                                            png_level=args.png_level, handoff=writer.hand_off)
                    if show and (info.noise_sigma_estimated or pnp.spec.blind):
                        bar.close()
                        src = job.deblur["kernel"]
                        # every run's scores go to the --json manifest only: a line, not a table
                        params = ", ".join(f"{k} {v}" for k, v in src.items() if k not in ("source", "shape", "runs"))
                        print(f"{PROG}: {job.input}: kernel {src['source']} {src['shape'][1]}x{src['shape'][0]}"
                              + (f" ({params})" if params else "")
                              + (f", estimated noise sigma {info.noise_sigma:.2f} (0-255; set it with --noise-sigma)"
                                 if info.noise_sigma_estimated else ""), file=sys.stderr)
                else:
                    assert model is not None
                    restore_file(model, job, args.quality, args.max_pixels, progress=tile_progress,
                                 png_level=args.png_level, handoff=writer.hand_off)
                continue  # reported by the writer once written
            except Interrupted as exc:
                interrupted = exc
                job.status, job.error = "interrupted", f"abandoned: interrupted by {exc.name}; rerun with --resume"
                job.exit_code = exc.exit_code
            except Exception as exc:  # a bad file must not stop the batch (MemoryError included)
                _fail_unexpected(job, exc)
            writer.drain()  # the previous file's line first
            if interrupted is not None:
                job.seconds = time.perf_counter() - job_started.pop(index)
                break
            report(job, index)
    finally:
        writer.close()  # a restored image being written is finished (writes are atomic), even when interrupted
    stop.finishing = True  # a signal from here on (e.g. during the last write) is only recorded: all is done
    bar.close()
    wall = time.perf_counter() - started

    ok = [j for j in jobs if j.status == "ok"]
    failed = [j for j in jobs if j.status == "error"]
    skipped = [j for j in jobs if j.status == "skipped"]
    if len(jobs) > 1 or interrupted is not None or (show and ok):
        extra = f", {len(skipped)} skipped (already done)" if skipped else ""
        megapixels = sum(j.megapixels for j in ok)
        rate = f" ({megapixels:.1f} MP, {megapixels / wall:.2f} MP/s)" if ok and wall > 0 else ""
        print(f"{PROG}: {len(ok)} of {len(jobs)} restored, {len(failed)} failed{extra}, {wall:.1f}s{rate}", file=sys.stderr)
        for job in failed:
            print(f"  failed: {job.error}", file=sys.stderr)

    bench = None
    if args.benchmark and (model is not None or classic is not None):
        bench = _benchmark(ok, wall, model, classic)
        _print_benchmark(bench)
    manifest_ok = True
    if manifest_path is not None:
        manifest_ok = _write_manifest(manifest_path, args.model, model, jobs, wall, bench, interrupted, classic, pnp,
                                      args.strength)

    if interrupted is not None:
        left = sum(j.status in ("pending", "interrupted") for j in jobs)
        print(f"{PROG}: interrupted by {interrupted.name}: {left} file(s) not done; "
              "rerun the same command with --resume to finish", file=sys.stderr)
        return interrupted.exit_code
    if not failed:
        return errors.EXIT_OK if manifest_ok else errors.EXIT_CANT_WRITE
    codes = {j.exit_code for j in failed}
    if len(codes) == 1 and (len(jobs) == 1 or not ok):
        return codes.pop()
    return errors.EXIT_PARTIAL


def _benchmark(ok: list[Job], wall: float, model: RestorationModel | None, classic: ClassicRun | None = None) -> dict:
    """Throughput and peak memory of the run; tile latency too when a model ran.

    A classic method has no tiles, so it reports only what compares across both paths:
    megapixels/s end to end (read + restore + write) and peak memory.
    """
    megapixels = sum(j.megapixels for j in ok)
    # The batch's wall time after the model load: per-file seconds overlap once writes run beside the next file.
    common = {
        "megapixels": round(megapixels, 4),
        "megapixels_per_second": round(megapixels / wall, 4) if wall > 0 else None,
        "wall_seconds": round(wall, 4),
        "peak_memory_mib": None if (m := peak_memory_mib()) is None else round(m, 1),
    }
    if model is None:
        assert classic is not None
        return {"backend": classic.label, **common}
    stats = model.stats
    return {
        "backend": model.backend.kind,
        "threads": getattr(model.backend, "threads", None),
        "tile_size": model.tile_size,
        "overlap": model.overlap,
        "tiles": stats.tiles,
        "ms_per_tile": round(stats.seconds_per_tile * 1000, 3),
        "inference_seconds": round(stats.inference_seconds, 4),
        **common,
    }


def _print_benchmark(b: dict) -> None:
    mps = "n/a" if b["megapixels_per_second"] is None else f"{b['megapixels_per_second']:.3f}"
    mem = "n/a" if b["peak_memory_mib"] is None else f"{b['peak_memory_mib']:.1f} MiB"
    if "tiles" in b:
        head = (f"benchmark: {b['backend']} threads={b['threads']} tile={b['tile_size']} overlap={b['overlap']}\n"
                f"  latency: {b['ms_per_tile']:.2f} ms/tile over {b['tiles']} tiles ({b['inference_seconds']:.3f} s in the model)")
    else:
        head = f"benchmark: {b['backend']} (whole image at once, no tiles)"
    print(
        f"{head}\n"
        f"  throughput: {mps} megapixels/s end to end ({b['megapixels']:.3f} MP in {b['wall_seconds']:.2f} s)\n"
        f"  peak memory: {mem} (max RSS)",
        file=sys.stderr,
    )


def _write_manifest(
    path: Path, model_arg: str | None, model: RestorationModel | None, jobs: list[Job], wall: float, bench: dict | None,
    interrupted: Interrupted | None = None, classic: ClassicRun | None = None, pnp: PnPRun | None = None,
    strength: float | None = None,
) -> bool:
    if classic is not None:
        model_field = classic.label
    else:
        model_field = str(model.path) if model is not None else str(model_arg)
    manifest = {
        "model": model_field,
        "contract": asdict(model.contract) if model is not None else None,
        "classic": classic.manifest() if classic is not None else None,
        "deconvolution": pnp.manifest() if pnp is not None else None,
        "strength": (1.0 if strength is None else strength) if model is not None and pnp is None else None,
        "ensemble": ({"views": model.views, "pixel_shuffle": model.pixel_shuffle}
                     if model is not None and pnp is None else None),
        "files": [j.manifest() for j in jobs],
        "summary": {
            "total": len(jobs),
            "ok": sum(j.status == "ok" for j in jobs),
            "failed": sum(j.status == "error" for j in jobs),
            "skipped": sum(j.status == "skipped" for j in jobs),
            "interrupted": sum(j.status == "interrupted" for j in jobs),
            "pending": sum(j.status == "pending" for j in jobs),
            "seconds": round(wall, 4),
        },
        "interrupted_by": interrupted.name if interrupted is not None else None,
        "benchmark": bench,
    }
    text = json.dumps(manifest, indent=2, default=str) + "\n"
    if path == STDOUT:
        return _Lines(sys.stdout).text(text)
    try:
        atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
    except OutputWriteError as exc:
        print(f"{PROG}: error: manifest: {exc}", file=sys.stderr)
        return False
    return True


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
