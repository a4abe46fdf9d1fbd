"""--compare labels: drawn over the pixels, readable at any size, any bit depth / channels / alpha."""

from __future__ import annotations

import numpy as np
from PIL import Image

from edge_runtime.imageio import Picture, side_by_side
from edge_runtime.labels import label_scale, stamp_label, text_mask


def _picture(h: int, w: int, channels: int = 3, dtype=np.uint8, alpha: bool = False) -> Picture:
    top = np.iinfo(dtype).max
    color = np.full((h, w, channels), top // 2, dtype=dtype)
    return Picture(color=color, alpha=np.zeros((h, w), dtype) if alpha else None)


def test_text_mask_is_the_bitmap_font():
    before, after = text_mask("before"), text_mask("after")
    assert before.dtype == bool and before.shape == (11, 36) and after.shape == (11, 30)
    assert 0 < before.sum() < before.size  # some ink, not a filled box


def test_label_grows_with_the_image():
    assert label_scale(20, 30) == 1 and label_scale(480, 640) == 1
    assert label_scale(1600, 2400) == 5 and label_scale(3000, 4000) == 9


def test_side_by_side_labels_differ_from_plain_and_keep_the_size():
    left, right = _picture(1600, 2400), _picture(1600, 2400)
    plain = side_by_side(left, right, labels=False)
    labelled = side_by_side(left, right)
    assert labelled.color.shape == plain.color.shape == (1600, 4800, 3)
    changed = np.any(labelled.color != plain.color, axis=2)
    rows, cols = np.nonzero(changed)
    # scale 5: "before" is 180 x 55 px in a 210 x 85 box, 15 px from the corner
    assert rows.min() == 15 and rows.max() == 15 + 85 - 1
    assert cols.min() == 15 and cols.max() == 2400 + 15 + 30 * 5 + 30 - 1
    assert not changed[:, 15 + 210:2400].any()
    assert (labelled.color[changed] == 255).any() and (labelled.color[changed] < 128).any()


def test_labels_on_16_bit_gray_with_alpha():
    left = _picture(200, 200, channels=1, dtype=np.uint16, alpha=True)
    out = side_by_side(left, _picture(200, 200, channels=1, dtype=np.uint16, alpha=True))
    assert out.color.dtype == np.uint16 and out.color.shape == (200, 400, 1)
    assert out.color.max() == 65535  # the text is white at 16 bits
    assert out.alpha is not None and out.alpha[5, 5] == 65535 and out.alpha[5, 205] == 65535  # opaque box
    assert out.alpha[150, 150] == 0  # the rest of the transparent image stays transparent


def test_no_label_where_it_does_not_fit():
    color = np.zeros((12, 30, 3), np.uint8)
    assert stamp_label(color, None, "before", 0, 30) is False
    assert not color.any()


def test_label_is_legible(tmp_path):
    """The stamped label reads back as the font's glyphs (white on the dark box), not a smudge."""
    color = np.full((100, 100, 3), 200, np.uint8)
    assert stamp_label(color, None, "after", 0, 100)
    glyphs = color[6:17, 6:36, 0] == 255  # box 3 px from the corner, text 3 px inside it
    assert np.array_equal(glyphs, text_mask("after"))
    Image.fromarray(color).save(tmp_path / "label.png")  # a real image, for a look when debugging
