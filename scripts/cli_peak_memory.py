"""Peak memory of the `edge-restore` command line on a large photo, against the issue-4 bound.

    .venv/bin/python scripts/cli_peak_memory.py                 # 48 MP JPEG and PNG, shipped model
    .venv/bin/python scripts/cli_peak_memory.py --megapixels 12 --formats png

For each format it writes a synthetic RGB 8-bit image (edge_runtime.bench.synthetic_image, 4:3,
8000x6000 at 48 MP), runs the real command line on it in a subprocess

    edge-restore -m MODEL --threads N -o OUT.EXT IN.EXT

and prints the child's peak resident set size against the bound of issue 4:
2.5 x the decoded image + 150 MB. Exit status 0 when every run passes, 1 otherwise.

How the peak is read: the command runs under a tiny wrapper interpreter (`python -S`, no numpy)
that spawns it and collects it with os.wait4(), whose ru_maxrss is the child's peak RSS over its
whole life, including the last moment of the output write (polling /proc/PID/status VmHWM could
miss a peak after the last poll). ru_maxrss also inherits the RSS of the process that forked
the child at the time of the fork, so the wrapper stays small (about 10 MiB) and its own peak is
printed beside the result as the floor below which a figure would mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere: import the repository's runtime
    sys.path.insert(0, str(ROOT))

from edge_runtime.bench import synthetic_image  # noqa: E402

MB = 1e6
MIB = 2**20
#: Issue 4: peak <= BOUND_FACTOR x decoded image bytes + BOUND_EXTRA_BYTES.
BOUND_FACTOR = 2.5
BOUND_EXTRA_BYTES = 150 * MB
#: File formats measured by default, by extension; the value is the Pillow save format.
SAVE_FORMATS = {"jpg": "JPEG", "png": "PNG"}
JPEG_QUALITY = 95

# Runs in `python -S`: spawn argv[2:], wait for it with wait4() and write its exit status, its
# ru_maxrss (KiB on Linux, bytes on macOS) and the wrapper's own peak to the JSON file argv[1].
# The wrapper's own peak is its address space's VmHWM (KiB): its ru_maxrss would show the RSS of
# *its* parent at the fork, which is not what the measured child inherits.
_WRAPPER = r"""
import json, os, resource, sys
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    with open("/proc/self/status") as fh:
        own = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
except (OSError, StopIteration, ValueError):
    pass
with open(sys.argv[1], "w") as fh:
    json.dump({"status": os.waitstatus_to_exitcode(status), "maxrss": usage.ru_maxrss, "own": own,
               "darwin": sys.platform == "darwin"}, fh)
"""


@dataclass
class PeakResult:
    """One measured run: exit status, the child's peak RSS and the wrapper's own peak (MiB)."""

    returncode: int
    peak_mib: float
    wrapper_mib: float
    seconds: float
    output: str


def bound_mib(decoded_bytes: int) -> float:
    """Issue 4's bound for an image that decodes to `decoded_bytes`, in MiB."""
    return (BOUND_FACTOR * decoded_bytes + BOUND_EXTRA_BYTES) / MIB


def cli_command(model: str | os.PathLike, src: Path, dst: Path, threads: int) -> list[str]:
    """The command line measured: the installed `edge-restore` beside this Python, else `-m edge_runtime.cli`."""
    script = Path(sys.executable).with_name("edge-restore")
    head = [str(script)] if script.is_file() else [sys.executable, "-m", "edge_runtime.cli"]
    return [*head, "-m", str(model), "--threads", str(threads), "-o", str(dst), str(src)]


def child_peak_rss(cmd: list[str], timeout: float = 900.0) -> PeakResult:
    """Run `cmd` to completion under the small wait4() wrapper and return its peak RSS.

    The child's stdout and stderr are captured and returned together as `output`.
    """
    exe = cmd[0] if os.path.isabs(cmd[0]) else _which(cmd[0])
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory(prefix="peak_rss_") as tmp:
        report = Path(tmp) / "rusage.json"
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-S", "-c", _WRAPPER, str(report), exe, *cmd[1:]],
            capture_output=True, text=True, timeout=timeout, env=env,
        )
        seconds = time.perf_counter() - start
        if not report.is_file():
            raise RuntimeError(f"the measuring wrapper failed: {proc.stderr.strip()[-500:]}")
        info = json.loads(report.read_text())
    unit = 1 if info["darwin"] else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return PeakResult(
        returncode=int(info["status"]),
        peak_mib=info["maxrss"] * unit / MIB,
        wrapper_mib=info["own"] * unit / MIB,
        seconds=seconds,
        output=(proc.stdout + proc.stderr).strip(),
    )


def _which(name: str) -> str:
    """Absolute path of an executable on PATH (posix_spawn does not search PATH)."""
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found on PATH")
    return found


def write_input(folder: Path, megapixels: float, ext: str, seed: int = 0) -> tuple[Path, tuple[int, ...]]:
    """Write the synthetic test image as IN.<ext> in `folder`; returns its path and array shape."""
    image = synthetic_image(megapixels, seed=seed)
    path = folder / f"in.{ext}"
    pil = Image.fromarray(image)
    del image  # the Pillow copy is all that is needed to save it
    kwargs = {"quality": JPEG_QUALITY} if SAVE_FORMATS[ext] == "JPEG" else {"compress_level": 1}
    pil.save(path, format=SAVE_FORMATS[ext], **kwargs)
    shape = (pil.height, pil.width, 3)
    pil.close()
    return path, shape


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of this script."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "models" / "denoise_int8.tflite"), help="model (default the shipped INT8 denoiser)")
    p.add_argument("--megapixels", type=float, default=48.0, help="image size (default 48 = 8000x6000)")
    p.add_argument("--threads", type=int, default=2, help="--threads for edge-restore (default 2)")
    p.add_argument("--formats", default="jpg,png", help=f"comma-separated input/output formats (default jpg,png; from {', '.join(SAVE_FORMATS)})")
    p.add_argument("--workdir", help="folder for the images (default a temporary folder, removed afterwards)")
    return p


def measure(args: argparse.Namespace, folder: Path) -> bool:
    """Measure every requested format in `folder`, print one line each; True when all pass."""
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in SAVE_FORMATS]
    if unknown:
        raise SystemExit(f"unknown format(s) {', '.join(unknown)} (choose from {', '.join(SAVE_FORMATS)})")
    all_ok = True
    header_done = False
    for ext in formats:
        src, shape = write_input(folder, args.megapixels, ext)
        decoded = int(np.prod(shape))  # 8-bit RGB: one byte per sample
        limit = bound_mib(decoded)
        if not header_done:
            h, w, _ = shape
            print(f"edge-restore peak RSS, {w}x{h} RGB 8-bit, decoded {decoded / MB:.1f} MB = {decoded / MIB:.1f} MiB; "
                  f"bound {BOUND_FACTOR} x decoded + {BOUND_EXTRA_BYTES / MB:.0f} MB = {limit:.1f} MiB")
            print(f"model {args.model}, --threads {args.threads}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
            header_done = True
        dst = folder / f"out.{ext}"
        cmd = cli_command(args.model, src, dst, args.threads)
        res = child_peak_rss(cmd)
        ok = res.returncode == 0 and dst.is_file() and res.peak_mib <= limit
        all_ok &= ok
        verdict = "PASS" if ok else "FAIL"
        print(f"  {SAVE_FORMATS[ext]:<4} in {src.stat().st_size / MB:6.1f} MB  out "
              f"{(dst.stat().st_size / MB) if dst.is_file() else 0:6.1f} MB  exit {res.returncode}  "
              f"{res.seconds:5.1f} s  peak {res.peak_mib:6.1f} MiB  ({res.peak_mib / limit:.0%} of the bound, "
              f"wrapper floor {res.wrapper_mib:.1f} MiB)  {verdict}")
        if res.returncode != 0:
            print("    " + res.output.replace("\n", "\n    "))
        for path in (src, dst):
            path.unlink(missing_ok=True)
    return all_ok


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 when every format's peak is within the bound, 1 otherwise."""
    args = build_parser().parse_args(argv)
    if args.workdir:
        folder = Path(args.workdir)
        folder.mkdir(parents=True, exist_ok=True)
        return 0 if measure(args, folder) else 1
    with tempfile.TemporaryDirectory(prefix="cli_peak_") as tmp:
        return 0 if measure(args, Path(tmp)) else 1


if __name__ == "__main__":
    sys.exit(main())
