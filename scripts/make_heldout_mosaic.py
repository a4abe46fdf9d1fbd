#!/usr/bin/env python3
"""Write a 1600x1920 benchmark photo: the 24 held-out CBSD432 photos (never trained on), 4 x 5.

    python scripts/make_heldout_mosaic.py ../shared/datasets/CBSD432 /tmp/bigimg/heldout_mosaic.png

`python -m edge_runtime.bench --images /tmp/bigimg` then measures on a multi-megapixel real photo
instead of the default 512x512 one, where tile 256 / overlap 16 needs 9 tiles for 4 tiles' area.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from train.data import is_held_out, list_images

COLS, ROWS, TILE_H, TILE_W = 4, 5, 320, 480


def mosaic(folder: str) -> np.ndarray:
    """The first COLS*ROWS held-out photos of `folder`, landscape, cropped to TILE_H x TILE_W."""
    photos = [p for p in list_images(folder) if is_held_out(p)][: COLS * ROWS]
    if len(photos) < COLS * ROWS:
        raise SystemExit(f"{folder}: {len(photos)} held-out photos, need {COLS * ROWS}")
    tiles = []
    for p in photos:
        im = np.asarray(Image.open(p).convert("RGB"))
        im = im.transpose(1, 0, 2) if im.shape[0] > im.shape[1] else im
        if im.shape[0] < TILE_H or im.shape[1] < TILE_W:
            raise SystemExit(f"{p}: smaller than {TILE_W}x{TILE_H}")
        tiles.append(im[:TILE_H, :TILE_W])
    return np.concatenate([np.concatenate(tiles[r * COLS : (r + 1) * COLS], axis=1) for r in range(ROWS)], axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photos", help="CBSD432-like folder (the held-out split is taken)")
    ap.add_argument("out", help="output PNG")
    args = ap.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mosaic(args.photos)).save(out)
    print(out)


if __name__ == "__main__":
    main()
