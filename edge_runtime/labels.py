"""Small text labels stamped onto --compare images ("before" / "after").

The label is drawn with Pillow's built-in bitmap font (no font file on the board), rendered once
as a 0/255 mask and enlarged by whole pixels so it stays crisp and readable on a 12 MP photo as on
a thumbnail. It is stamped over the image's top-left corner, so the image size does not change.
Works on the arrays of any Picture: 8 or 16 bits, gray or colour, with or without alpha.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: One label scale step per this many pixels of the image's shorter side (a 3.8 MP photo gets 5x).
PIXELS_PER_SCALE = 320
#: Padding around the text and gap to the image edge, in font pixels (multiplied by the scale).
PAD = 3
#: How much of the underlying image shows through the label's dark box.
BOX_SHADE = 0.3


@lru_cache(maxsize=8)
def text_mask(text: str) -> np.ndarray:
    """(h, w) bool mask of `text` in Pillow's default bitmap font (no font file needed)."""
    # Pillow >= 10.1 returns a FreeType font from load_default(); the bitmap one has its own name.
    font = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()
    left, top, right, bottom = font.getbbox(text)
    canvas = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(canvas).text((-left, -top), text, fill=255, font=font)
    return np.asarray(canvas) > 127


def label_scale(height: int, width: int) -> int:
    """Whole-pixel enlargement of the label for an image (half) of this size."""
    return max(1, min(height, width) // PIXELS_PER_SCALE)


def stamp_label(color: np.ndarray, alpha: np.ndarray | None, text: str, x0: int, width: int) -> bool:
    """Stamp `text` in place at the top-left of the columns [x0, x0 + width) of `color` (H, W, C).

    White text on a darkened box; under the box the alpha (if any) becomes opaque so the label
    shows on transparent images. Returns False, drawing nothing, when the label does not fit.
    """
    height = color.shape[0]
    scale = label_scale(height, width)
    mask = text_mask(text).repeat(scale, axis=0).repeat(scale, axis=1)
    pad = PAD * scale
    box_h, box_w = mask.shape[0] + 2 * pad, mask.shape[1] + 2 * pad
    if box_h + pad > height or box_w + pad > width:
        return False
    top, left = pad, x0 + pad
    white = np.iinfo(color.dtype).max
    box = color[top:top + box_h, left:left + box_w]
    box[...] = (box * BOX_SHADE).astype(color.dtype)
    box[pad:pad + mask.shape[0], pad:pad + mask.shape[1]][mask] = white
    if alpha is not None:
        alpha[top:top + box_h, left:left + box_w] = np.iinfo(alpha.dtype).max
    return True
