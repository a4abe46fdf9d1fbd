"""`python -m edge_runtime.bench --process`: whole-process vs model-only megapixels/s, in one run.

Two scenarios from issue 19, on noisy photo-like images written to a temporary folder:

    single   one 3.8 MP PNG -> PNG           target: whole process >= 70% of the model-only rate
    batch    twenty 12 MP JPEGs -> JPEG      target: whole process >= 85% of the model-only rate

*Model-only* is `restore()` on the decoded image, the model already loaded (decoding and
encoding untimed). *Whole process* is the real command, `python -m edge_runtime.cli --model M
FILES -o OUT -q`, timed from start to exit: interpreter start, imports, model load, decoding,
restoring, encoding and writing. Both run with the same threads, alternately, best of --repeats.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: Whole-process rate as a fraction of the model-only rate (issue 19).
TARGETS = {"single": 0.70, "batch": 0.85}


@dataclass
class Scenario:
    key: str
    count: int
    megapixels: float
    ext: str  # .png or .jpg


@dataclass
class ProcessResult:
    key: str
    files: int
    megapixels: float
    model_only_mps: float
    whole_process_mps: float
    ratio: float
    target: float
    command: str
    png_levels: dict | None = None  # single: {level: [encode seconds, bytes]} of the restored PNG

    @property
    def passed(self) -> bool:
        return self.ratio >= self.target


def photo(clean: np.ndarray, megapixels: float, sigma: float, seed: int) -> np.ndarray:
    """`clean` resized (Lanczos) to about `megapixels` at 4:3, with Gaussian noise of `sigma` (0-255)."""
    w = int(round(math.sqrt(megapixels * 1e6 * 4 / 3)))
    h = int(round(megapixels * 1e6 / w))
    big = np.asarray(Image.fromarray(clean).resize((w, h), Image.LANCZOS), dtype=np.float32)
    rng = np.random.default_rng(seed)
    for y in range(0, h, 512):  # in bands: no second full-size float temporary
        big[y : y + 512] += rng.normal(0.0, sigma, big[y : y + 512].shape).astype(np.float32)
    return np.clip(np.rint(big), 0, 255).astype(np.uint8)


def write_inputs(folder: Path, scenario: Scenario, clean: np.ndarray, sigma: float) -> list[Path]:
    files = []
    for i in range(scenario.count):
        path = folder / f"{scenario.key}_{i:02d}{scenario.ext}"
        img = Image.fromarray(photo(clean, scenario.megapixels, sigma, seed=i))
        # As a camera or an editor would write them: JPEG quality 95, PNG at Pillow's default level.
        img.save(path, **({"quality": 95} if scenario.ext == ".jpg" else {}))
        files.append(path)
    return files


def model_only_seconds(model_path: str, files: list[Path], threads: int) -> tuple[float, float]:
    """Seconds inside restore() over `files` (each decoded untimed), and their megapixels."""
    from .api import load_model
    from .imageio import read_image

    model = load_model(model_path, threads=threads)
    model.restore(np.zeros((model.tile_size, model.tile_size, 3), np.uint8))  # warm-up: first-run allocations
    seconds = megapixels = 0.0
    for path in files:
        color = read_image(path).color
        start = time.perf_counter()
        model.restore(color)
        seconds += time.perf_counter() - start
        megapixels += color.shape[0] * color.shape[1] / 1e6
        del color
    return seconds, megapixels


def png_level_costs(path: Path, levels: tuple[int, ...] = (0, 1, 3, 6, 9)) -> dict[int, list[float]]:
    """Encode seconds and size of the restored image `path` at each zlib level (the --png-level choice)."""
    import io

    costs = {}
    with Image.open(path) as im:
        im.load()
        for level in levels:
            buf = io.BytesIO()
            start = time.perf_counter()
            im.save(buf, format="PNG", compress_level=level)
            costs[level] = [round(time.perf_counter() - start, 3), buf.tell()]
    return costs


def whole_process_seconds(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()}")
    return seconds


def run_scenario(scenario: Scenario, model_path: str, clean: np.ndarray, args: argparse.Namespace) -> ProcessResult:
    with tempfile.TemporaryDirectory(prefix=f"edge-bench-{scenario.key}-") as tmp:
        folder = Path(tmp)
        files = write_inputs(folder, scenario, clean, args.sigma)
        out = folder / "out"
        command = [sys.executable, "-m", "edge_runtime.cli", "--model", model_path, *map(str, files),
                   "-o", str(out) + "/", "-q", "--overwrite", "--threads", str(args.threads), *args.cli_args.split()]
        best_model = best_whole = math.inf
        megapixels = 0.0
        for _ in range(args.repeats):  # alternately, so that both see the same machine load
            seconds, megapixels = model_only_seconds(model_path, files, args.threads)
            best_model = min(best_model, seconds)
            best_whole = min(best_whole, whole_process_seconds(command))
        levels = png_level_costs(next(out.iterdir())) if scenario.ext == ".png" else None
    shown = " ".join(["python -m edge_runtime.cli", "--model", model_path, f"<{scenario.count} x {scenario.megapixels:g} MP "
                      f"{scenario.ext}>", "-o", "OUT/", "-q", "--overwrite", "--threads", str(args.threads), args.cli_args]).strip()
    model_mps, whole_mps = megapixels / best_model, megapixels / best_whole
    return ProcessResult(scenario.key, scenario.count, round(megapixels, 3), round(model_mps, 4), round(whole_mps, 4),
                         round(whole_mps / model_mps, 3), TARGETS[scenario.key], shown, levels)


def clean_image() -> np.ndarray:
    """A clean photo to scale up: scikit-image's astronaut when installed, else a smooth synthetic scene."""
    try:
        from skimage import data

        return np.asarray(data.astronaut())
    except ImportError:
        y, x = np.mgrid[0:512, 0:512].astype(np.float32)
        scene = np.stack([128 + 100 * np.sin(x / 37), 128 + 100 * np.cos(y / 53), (x + y) / 4], axis=-1)
        return np.clip(scene, 0, 255).astype(np.uint8)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--process", action="store_true",
                   help="only compare the whole command (read + restore + write) with the model alone (issue 19 targets)")
    p.add_argument("--process-model", default="denoise", metavar="NAME|PATH", help="model for --process (default denoise)")
    p.add_argument("--process-scenarios", default="single,batch", metavar="LIST", help="single,batch (default both)")
    p.add_argument("--single-mp", type=float, default=3.8, help="megapixels of the single PNG (default 3.8)")
    p.add_argument("--batch-count", type=int, default=20, help="JPEGs in the batch (default 20)")
    p.add_argument("--batch-mp", type=float, default=12.0, help="megapixels of each JPEG (default 12)")
    p.add_argument("--cli-args", default="", metavar="ARGS", help="extra edge-restore options for the whole-process run, "
                   "e.g. '--png-level 6'")


def main(args: argparse.Namespace) -> int:
    """Run the --process comparison; 0 when every target passes, 1 when one fails, 2 on a usage error."""
    from .api import resolve_model
    from .errors import EdgeRestoreError

    try:
        model_path = str(resolve_model(args.process_model))
    except EdgeRestoreError as exc:
        print(f"python -m edge_runtime.bench: error: {exc}", file=sys.stderr)
        return 2
    plan = {"single": Scenario("single", 1, args.single_mp, ".png"),
            "batch": Scenario("batch", args.batch_count, args.batch_mp, ".jpg")}
    keys = [k.strip() for k in args.process_scenarios.split(",") if k.strip()]
    if not keys or any(k not in plan for k in keys) or args.batch_count < 1 or min(args.single_mp, args.batch_mp) <= 0:
        print("python -m edge_runtime.bench: error: --process-scenarios takes single,batch; counts and sizes must be positive",
              file=sys.stderr)
        return 2
    clean = clean_image()
    results = [run_scenario(plan[k], model_path, clean, args) for k in keys]
    print(f"whole process vs model only: {Path(model_path).name}, threads={args.threads}, best of {args.repeats}")
    print(f"  {'scenario':<8} {'files':>5} {'MP':>7} {'model MP/s':>10} {'whole MP/s':>10} {'ratio':>6} {'target':>6}")
    for r in results:
        print(f"  {r.key:<8} {r.files:>5} {r.megapixels:>7.1f} {r.model_only_mps:>10.3f} {r.whole_process_mps:>10.3f} "
              f"{r.ratio:>6.0%} {r.target:>6.0%}  {'PASS' if r.passed else 'FAIL'}")
        print(f"           $ {r.command}")
        if r.png_levels:
            print("           restored PNG, Pillow encode by zlib level: " + ", ".join(
                f"{lvl}: {sec:.2f} s {size / 1e6:.1f} MB" for lvl, (sec, size) in r.png_levels.items()))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps([asdict(r) | {"passed": r.passed} for r in results], indent=2) + "\n")
    return 0 if all(r.passed for r in results) else 1
