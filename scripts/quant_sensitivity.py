"""Which quantization points cost the most PSNR? A leave-one-out sweep over a QAT checkpoint.

The int8 model loses some dB against the same weights run in float. This script runs the torch
fake-quant model (the graph that exports to QDQ and then to TFLite) on real tiles with all points
quantized, then once more per point with only that point in float, and prints how many dB each
point gives back, largest first. The conv weights count as one point ("all conv weights").

    python scripts/quant_sensitivity.py models/denoise_qat.pt --images ../shared/datasets/Set14 \\
        --count 4 --sigma 15

Each point reruns the model on every tile: for the shipped denoiser (126 points) that command took
about 6 minutes on 2 cores; the defaults (8 tiles, sigma 15 and 50) take four times as long.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from export.verify import parity_tiles, rounded_psnr, run_torch  # noqa: E402
from train.checkpoint import checkpoint_task, load_restorer  # noqa: E402
from train.quant import ActQuant, QConv2d, set_quant_mode  # noqa: E402

WEIGHTS = "all conv weights"


@dataclass
class PointCost:
    """dB gained at each noise level when one quantization point runs in float."""

    name: str
    gain_db: dict[float, float]


def quant_points(model: nn.Module) -> dict[str, list[nn.Module]]:
    """Every activation point by module name, plus all conv weights as one group."""
    points: dict[str, list[nn.Module]] = {n: [m] for n, m in model.named_modules() if isinstance(m, ActQuant)}
    points[WEIGHTS] = [m for m in model.modules() if isinstance(m, QConv2d)]
    return points


def sensitivity(model: nn.Module, tiles: dict[float, tuple[np.ndarray, np.ndarray]]
                ) -> tuple[dict[float, float], dict[float, float], list[PointCost]]:
    """(float PSNR, fake-quant PSNR, per-point gains) for each noise level's (degraded, clean) tiles."""
    def score() -> dict[float, float]:
        return {s: rounded_psnr(run_torch(model, deg), clean) for s, (deg, clean) in tiles.items()}

    set_quant_mode(model, "off")
    float_db = score()
    set_quant_mode(model, "quant")
    quant_db = score()
    costs = []
    points = quant_points(model)
    for i, (name, modules) in enumerate(points.items(), 1):
        print(f"\r[{i}/{len(points)}] {name:<60}", end="", file=sys.stderr, flush=True)
        for m in modules:
            m.mode = "off"
        costs.append(PointCost(name, {s: db - quant_db[s] for s, db in score().items()}))
        for m in modules:
            m.mode = "quant"
    print(file=sys.stderr)
    costs.sort(key=lambda c: -max(c.gain_db.values()))
    return float_db, quant_db, costs


def table(float_db: dict[float, float], quant_db: dict[float, float], costs: list[PointCost], top: int) -> str:
    sigmas = list(float_db)
    head = "".join(f"{'sigma ' + format(s, 'g'):>12}" for s in sigmas)
    rows = [f"{'':<46}{head}",
            f"{'float (all points off)':<46}" + "".join(f"{float_db[s]:>12.2f}" for s in sigmas),
            f"{'fake-quant (all points on)':<46}" + "".join(f"{quant_db[s]:>12.2f}" for s in sigmas),
            f"{'gap':<46}" + "".join(f"{quant_db[s] - float_db[s]:>+12.3f}" for s in sigmas),
            "dB given back by running one point in float (leave-one-out), largest first:"]
    rows += [f"  {c.name:<44}" + "".join(f"{c.gain_db[s]:>+12.3f}" for s in sigmas) for c in costs[:top]]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="QAT checkpoint (frozen ranges), e.g. models/denoise_qat.pt")
    parser.add_argument("--images", help="folder of clean images, centre tiles used (default: dead-leaves tiles)")
    parser.add_argument("--count", type=int, default=8, help="number of images (default 8)")
    parser.add_argument("--tile", type=int, default=256, help="tile side in pixels (default 256)")
    parser.add_argument("--sigma", type=float, action="append", help="noise level(s), 0-255 scale (default 15 and 50)")
    parser.add_argument("--top", type=int, default=15, help="rows to print (default 15)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.tile < 8 or args.top < 1:
        parser.error("--count and --top must be at least 1, --tile at least 8")
    torch.set_num_threads(args.threads)
    model, ckpt = load_restorer(args.checkpoint)
    if not ckpt.get("qat"):
        parser.error(f"{args.checkpoint} is not a QAT checkpoint: it has no frozen ranges to leave out")
    tile = args.tile - args.tile % model.cfg.size_multiple
    sigmas = args.sigma or [15.0, 50.0]
    tiles = {s: parity_tiles(args.images, tile, model.cfg.channels, args.count, checkpoint_task(ckpt), sigma=s)
             for s in sigmas}
    print(table(*sensitivity(model, tiles), top=args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
