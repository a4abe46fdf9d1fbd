"""Run an image of any size through a fixed-tile model, seamlessly and with bounded memory.

Layout. Along each axis of length n, tiles of side T start at 0, S, 2S, ... with step S = T - O
(O = overlap), and the last tile is moved back to end exactly at the image's end. So for an image
at least a tile large, every tile lies inside the image and the model meets the image border with
its own zero padding, just as in whole-image inference and in training on crops. (Reflecting a
border into the tiles instead changes what the model sees at the edges: on Set14's pepper, whose
edges are dark lines, it cost 0.6 dB.) An axis shorter than a tile gets one tile whose remainder
is read by *reflection* (`reflect_indices`, the values np.pad(mode="reflect") gives, repeated for
pads longer than the image, and 'edge' for a 1-pixel axis), so images smaller than a tile
(1x1, 7x5, ...) just work.

Blending. Each tile's output is weighted by a separable window: 1 in its interior and on sides that
touch the image border; over an overlap with a neighbour it is 0 on the outer g = O // 4 pixels
(where the model's own zero padding corrupts its output) and then a raised-cosine ramp (sin^2)
up to 1. The ramps of two neighbours add up to exactly 1 (a last tile moved back starts its ramp
where its neighbour's falls, with weight 0 before it), and the result is still divided by the
accumulated weights, so there are no seams. As long as the model's receptive-field radius is at
most g, tiled output equals whole-image inference for images at least a tile large.

Copying. A model whose output is the 8-bit pixel grid too (`run_pixels` returns uint8) has its
tiles copied straight into the output wherever the tile's window is 1 and no other tile's is
above 0 (`exclusive_spans`), which is most of each tile; floats are accumulated only on the frame
around it. Where one tile has all the weight the blend is that tile's value, so the result is bit
for bit the float path's, with a fraction of its work.

Memory. Tile rows are processed top to bottom; only a band of T rows of float accumulators
(T x W x C) is kept, and rows no later tile can touch are converted and written out at once.
An image wider than `MAX_BAND_COLUMNS` (or 4 tiles) is processed in column *panels*, each top to
bottom with a band of its own width, so the band is bounded whatever the aspect ratio (a
256 x 200000 panorama needed 820 MB of T x W accumulators; issue 18). A panel ends where a tile
column j starts (never at the moved-back last tile), so the only tile reaching past it is tile
j - 1, by the overlap O: its result on those O columns is kept per tile row (T x O x C, the
"carry") and added in the next panel before tile j, in the order a single band adds it, so every
output value is the very same float sum and the result is bit-identical; each tile still runs once. The
input and output tiles, the band and the windows are allocated once and reused for every tile
(and for every frame, see `Tiler`). Tiles inside the image read their pixels as plain slices of a
view of the image (no gathered copy); only reflected borders gather. An 8-bit image through a
model whose input is the 8-bit pixel grid skips floats on the way in (`run_pixels`).

In place. `run(image, fn, out=image)` overwrites the image with its restoration, so a caller that
no longer needs the input holds one image instead of two. Finished rows are written while later
tile rows still have to be read. With this layout no tile row reads a row an earlier one has
written (each starts below the rows the earlier ones finish; a single tile row reads everything
before it writes), so the in-place result is bit-identical to the out-of-place one;
`Tiler.in_place_safe` replays the order to check it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

#: A tile function: (1, T, T, C) float32 NHWC in [0, 1] -> same shape float32 in [0, 1].
RunTile = Callable[[np.ndarray], np.ndarray]
#: A row sink: (first image row, first image column, rows of the output dtype, shape (k, w, C)).
#: Without column panels w is the image width and the column 0.
RowSink = Callable[[int, int, np.ndarray], None]

#: Widest band (image columns) the tiler keeps; wider images go in column panels (at least 4 tiles
#: wide). 8192 keeps a 48 MP photo (8000 px wide) in one band, as measured in docs/performance.md.
MAX_BAND_COLUMNS = 8192


def reflect_indices(start: int, stop: int, n: int) -> np.ndarray:
    """Indices into an axis of length n for positions start..stop-1, mirrored at both ends.

    Equals np.pad(..., mode="reflect") indexing (edge pixel not repeated), applied as many times as
    needed for pads longer than the axis; for n == 1 every position maps to 0 (mode "edge").
    """
    pos = np.arange(start, stop, dtype=np.intp)
    if n <= 1:
        return np.zeros_like(pos)
    period = 2 * (n - 1)
    m = np.mod(pos, period)
    return np.where(m < n, m, period - m)


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Start positions of the tiles along an axis of length n: 0, S, 2S, ... (S = T - O), the last
    one moved back to end exactly at the image's end. An axis shorter than a tile gets one tile at 0."""
    if n <= tile:
        return [0]
    step = tile - overlap
    count = math.ceil((n - tile) / step) + 1
    return [i * step for i in range(count - 1)] + [n - tile]


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    """How many tiles `Tiler(height, width, tile, overlap)` runs (without building one)."""
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


def blend_ramp(overlap: int) -> np.ndarray:
    """Rising weights over an overlap of O pixels: 0 on the outer O // 4, then sin^2 up to 1.

    ramp[i] + ramp[O - 1 - i] == 1 for every i, so two neighbours' weights sum to 1.
    """
    guard = overlap // 4
    mid = overlap - 2 * guard
    ramp = np.zeros(overlap, np.float64)
    ramp[overlap - guard :] = 1.0
    if mid:
        t = (np.arange(mid) + 0.5) / mid
        ramp[guard : guard + mid] = np.sin(0.5 * np.pi * t) ** 2
    return ramp.astype(np.float32)


def axis_window(tile: int, overlap: int, first: bool, last: bool, lead: int = 0) -> np.ndarray:
    """1-D window of one tile: ramps only on sides that overlap a neighbouring tile.

    `lead` > 0 (a last tile moved back to end at the image's end, so it overlaps its neighbour by
    overlap + lead) puts its rising ramp `lead` pixels in, where the neighbour's ramp falls, with
    weight 0 before it: the neighbour's output is used there, and the weights still sum to 1.
    """
    w = np.ones(tile, np.float32)
    if overlap:
        ramp = blend_ramp(overlap)
        if not first:
            w[:lead] = 0.0
            w[lead : lead + overlap] = ramp
        if not last:
            w[tile - overlap :] = ramp[::-1]
    return w


def axis_windows(starts: list[int], tile: int, overlap: int) -> list[np.ndarray]:
    """The window of every tile along one axis (see `axis_window`), for `tile_starts`' layout."""
    last = len(starts) - 1
    return [axis_window(tile, overlap, i == 0, i == last, 0 if i == 0 else starts[i - 1] + tile - overlap - s)
            for i, s in enumerate(starts)]


#: One 8-bit step in the float scale the tiler blends in.
_PIXEL_UNIT = np.float32(1.0 / 255.0)


def pixels_to_unit(pixels: np.ndarray, out: np.ndarray) -> np.ndarray:
    """8-bit pixels p as the float32 values in [0, 1] the tiler blends: p * float32(1 / 255)."""
    return np.multiply(pixels, _PIXEL_UNIT, out=out)


def exclusive_spans(starts: list[int], windows: list[np.ndarray], n: int) -> list[tuple[int, int]]:
    """For each tile along an axis of length n, [a, b) (tile coordinates): the longest run where
    its window is 1 and every other tile's is 0, so its output there is the result as it is.

    (With overlap 0 a last tile moved back shares pixels at full weight with its neighbour; they
    are averaged, so they belong to neither.)
    """
    total = np.zeros(n, np.float64)
    for s, w in zip(starts, windows):
        total[s : s + w.size] += w[: n - s]
    spans = []
    for s, w in zip(starts, windows):
        m = min(w.size, n - s)
        alone = np.zeros(w.size + 2, np.int8)
        alone[1 : m + 1] = (w[:m] == 1.0) & (total[s : s + m] == 1.0)
        edges = np.flatnonzero(np.diff(alone))
        runs = list(zip(edges[::2], edges[1::2]))
        a, b = max(runs, key=lambda ab: ab[1] - ab[0], default=(0, 0))
        spans.append((int(a), int(b)))
    return spans


def uncovered_runs(n: int, spans: list[tuple[int, int]]) -> list[slice]:
    """The runs of [0, n) that none of the [a, b) spans covers, as slices."""
    covered = np.zeros(n + 2, bool)
    covered[0] = covered[-1] = True
    for a, b in spans:
        covered[1 + max(a, 0) : 1 + min(b, n)] = True
    edges = np.flatnonzero(np.diff(covered.astype(np.int8)))
    return [slice(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def column_panels(starts: list[int], width: int, max_columns: int) -> list[tuple[int, int, int, int]]:
    """Split tile columns into panels of at most `max_columns` image columns (>= 2 tiles wide).

    Returns (x0, x1, c0, c1): image columns [x0, x1) are finished by the panel, which runs tile
    columns c0..c1-1; a panel after the first starts at a regular tile start (c0 >= 1, not the
    moved-back last tile), so only tile c0 - 1 reaches into it (by the overlap).
    """
    last = len(starts) - 1
    panels, c0 = [], 0
    while True:
        x0 = starts[c0] if c0 else 0
        if width - x0 <= max_columns or c0 + 1 > last - 1:
            panels.append((x0, width, c0, last + 1))
            return panels
        c1 = max((j for j in range(c0 + 1, last) if starts[j] - x0 <= max_columns), default=c0 + 1)
        panels.append((x0, starts[c1], c0, c1))
        c0 = c1


def max_value(dtype: np.dtype) -> float:
    """The value of full white in an image of this dtype (255, 65535, or 1.0 for floats)."""
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if dtype.kind == "f":
        return 1.0
    raise TypeError(f"unsupported image dtype {dtype} (use uint8, uint16 or float in [0, 1])")


class Tiler:
    """Precomputed tiling of a fixed image size; `run()` it on any number of same-sized images.

    `image_channels` may differ from `model_channels`: a 1-channel image through a 3-channel model
    is run with the gray value replicated to 3 channels and the output averaged back to 1 channel;
    a 3-channel image through a 1-channel model runs each channel on its own.
    """

    def __init__(
        self,
        height: int,
        width: int,
        tile: int,
        overlap: int,
        image_channels: int = 3,
        model_channels: int = 3,
    ) -> None:
        if height < 1 or width < 1:
            raise ValueError(f"image must be at least 1x1, got {height}x{width}")
        if not 0 <= overlap < tile / 2:
            raise ValueError(f"overlap {overlap} must be in [0, tile_size/2) for tile {tile}")
        if image_channels != model_channels and (image_channels, model_channels) not in ((1, 3), (3, 1)):
            raise ValueError(f"cannot run a {image_channels}-channel image through a {model_channels}-channel model")
        self.height, self.width, self.tile, self.overlap = height, width, tile, overlap
        self.image_channels, self.model_channels = image_channels, model_channels
        self.ys = tile_starts(height, tile, overlap)
        self.xs = tile_starts(width, tile, overlap)
        self.col_index = [reflect_indices(x, x + tile, width) for x in self.xs]
        self.row_index = [reflect_indices(y, y + tile, height) for y in self.ys]
        # tiles inside the image read a plain slice (a copy several times faster than np.take)
        self._col_slice = [_as_slice(i) for i in self.col_index]
        self._row_slice = [_as_slice(i) for i in self.row_index]
        self.row_spans = [self._finished_rows(r) for r in range(len(self.ys))]
        self.wy = axis_windows(self.ys, tile, overlap)
        self.wx = axis_windows(self.xs, tile, overlap)
        t, w, c = tile, width, image_channels
        # The band holds a tile's rows, or the image's when it is shorter: rows past a short
        # image's end are reflections no one reads back (a 1 x 300000 panorama through a
        # 256-pixel tile allocated 1.7 GB of T x W bands; issue 18).
        self.band_rows = hb = min(t, height)
        # ... and a panel's columns: an image many tiles wide is run in column panels
        self.panels = column_panels(self.xs, width, max(MAX_BAND_COLUMNS, 4 * tile))
        self.band_columns = w = max(x1 - x0 for x0, x1, _, _ in self.panels)
        self._acc = np.zeros((hb, w, c), np.float32)
        self._wacc = np.zeros((hb, w), np.float32)
        self._px0, self._pw = 0, w  # the panel being run: its first image column and width
        self._tile_in = np.zeros((1, t, t, model_channels), np.float32)
        # same channels: the float tile is the model's input buffer itself (no copy per tile)
        self._tile_f = self._tile_in[0] if c == model_channels else np.zeros((t, t, c), np.float32)
        self._res = np.zeros((t, t, c), np.float32)
        self._weighted = np.zeros((t, t, c), np.float32)
        self._weights = _WeightCache(self.wy, self.wx)
        self._band_in: np.ndarray | None = None
        self._raw: np.ndarray | None = None
        # Pixel tiles (run_pixels giving uint8) are copied where their window is 1 and blended
        # in floats only on the frame where it is below 1: a tile row's interior rows, and on
        # those rows the columns no tile's interior covers.
        self.y_ones = exclusive_spans(self.ys, self.wy, height)
        self.x_ones = exclusive_spans(self.xs, self.wx, width)
        self.blend_cols = uncovered_runs(width, [(x + a, x + b) for x, (a, b) in zip(self.xs, self.x_ones)])
        self._panel_blend_cols = blend_cols = []
        for x0, x1, _, _ in self.panels:  # blend_cols per panel, in panel columns
            blend_cols.append([slice(max(s.start, x0) - x0, min(s.stop, x1) - x0)
                               for s in self.blend_cols if min(s.stop, x1) > max(s.start, x0)])
        self._band_out: np.ndarray | None = None
        self._pixels_in = False  # set per run: uint8 tiles go to run_pixels as they are
        self._row_copied = np.zeros(hb, bool)  # band rows whose covered columns hold copied pixels

    @property
    def tiles(self) -> int:
        return len(self.ys) * len(self.xs)

    def _finished_rows(self, r: int) -> tuple[int, int]:
        """Image rows [lo, hi) that are final, and written out, once tile row r is done (may be empty)."""
        y0 = self.ys[r]
        # The last tile row finishes all of its rows; the others the rows above the next tile
        # row's start (the rest is still blended with it).
        finished = self.tile if r == len(self.ys) - 1 else self.ys[r + 1] - y0
        lo, hi = max(0, y0), min(self.height, y0 + finished)
        return lo, max(lo, hi)

    @property
    def in_place_safe(self) -> bool:
        """Whether no tile row reads a row an earlier one already wrote, replaying `run()`'s order:
        tile row r gathers the rows `row_index[r]` before it writes `row_spans[r]`. The layout makes
        this true for every size (later tile rows start below the rows earlier ones finish)."""
        written = np.zeros(self.height, bool)
        for rows, (lo, hi) in zip(self.row_index, self.row_spans):
            if written[rows].any():
                return False
            written[lo:hi] = True
        return True

    def check_target(self, image: np.ndarray, out: np.ndarray) -> None:
        """Refuse an output buffer that would corrupt the input while it is read: `out` may be
        `image` itself (if `in_place_safe`) or separate memory, never a partial overlap. A caller
        whose sink writes the finished rows into its own `out` checks it here too."""
        if _same_buffer(out, image):
            if not self.in_place_safe:  # the layout rules this out; never overwrite unread input
                raise RuntimeError(f"tiling of {self.height} rows would read rows it already wrote")
        elif np.may_share_memory(out, image) and np.shares_memory(out, image):
            raise ValueError("out overlaps image without being the same array (pass out=image to restore in place)")

    def _run_tile(self, run: RunTile) -> np.ndarray:
        """Run self._tile_f (T, T, Ci) through the model; the (T, T, Ci) result is only valid until
        the next call (it may be the backend's own buffer)."""
        ci, cm = self.image_channels, self.model_channels
        if ci == cm:
            return run(self._tile_in)[0]
        if ci == 1:  # gray through a colour model: replicate, then average back
            self._tile_in[0] = self._tile_f
            np.mean(run(self._tile_in)[0], axis=-1, keepdims=True, out=self._res)
        else:  # colour through a gray model: channel by channel
            for ch in range(ci):
                self._tile_in[0, ..., 0] = self._tile_f[..., ch]
                self._res[..., ch] = run(self._tile_in)[0, ..., 0]
        return self._res

    def run(
        self,
        image: np.ndarray,
        run: RunTile,
        out: np.ndarray | None = None,
        sink: RowSink | None = None,
        progress: Callable[[int, int], None] | None = None,
        run_pixels: RunTile | None = None,
        sink_dtype: np.dtype | None = None,
    ) -> np.ndarray | None:
        """Restore `image` (H, W, C) of dtype uint8, uint16 or float in [0, 1].

        `run_pixels`, when given, is a tile function that takes the 8-bit pixels themselves
        ((1, T, T, C) uint8) and returns what `run` would for them divided by 255; it is used for
        uint8 images whose channels match the model, which then skip the float round trip.

        Finished rows go to `sink(row, col, rows)` if given (`rows` is only valid during the call: it
        may be the tiler's own buffer; `col` > 0 only for column panels; of `sink_dtype`, default the
        image's: float32 hands over the unrounded [0, 1] values), else into `out` (allocated with the image's
        shape and dtype when None), which is returned. `out` may be `image` itself (restored in
        place, bit-identical to a separate output); any other overlap with `image` is refused.
        Integer outputs are rounded and clipped; float outputs are clipped to [0, 1].
        """
        if image.ndim != 3 or image.shape != (self.height, self.width, self.image_channels):
            raise ValueError(f"image shape {image.shape} != tiler shape {(self.height, self.width, self.image_channels)}")
        in_scale = 1.0 / max_value(image.dtype)
        if sink is not None and out is not None:
            raise ValueError("pass a sink or out, not both")
        out_dtype = np.dtype(image.dtype if sink_dtype is None else sink_dtype) if out is None else out.dtype
        out_max = max_value(np.dtype(out_dtype))
        if sink is None:
            if out is None:
                out = np.empty(image.shape, image.dtype)
            elif out.shape != image.shape:
                raise ValueError(f"out shape {out.shape} != image shape {image.shape}")
            self.check_target(image, out)
            target = out

            def sink(row: int, col: int, rows: np.ndarray) -> None:
                target[row : row + rows.shape[0], col : col + rows.shape[1]] = rows

        if self._raw is None or self._raw.dtype != image.dtype:
            self._raw = np.empty((1, self.tile, self.tile, self.image_channels), image.dtype)
        self._pixels_in = run_pixels is not None and image.dtype == np.uint8 and self.image_channels == self.model_channels
        carry: list[np.ndarray] = []
        state = _RunState(image, run, run_pixels, sink, np.dtype(out_dtype), out_max, in_scale, progress, self.tiles)
        for p, panel in enumerate(self.panels):
            carry = self._run_panel(p, panel, state, carry)
        return out

    def _run_panel(self, p: int, panel: tuple[int, int, int, int], st: "_RunState",
                   carry_in: list[np.ndarray]) -> list[np.ndarray]:
        """Run one column panel top to bottom; returns the carry for the next panel (per tile row,
        the last tile's result on the columns past the panel, see the module docstring)."""
        x0p, x1p, c0, c1 = panel
        t, hb = self.tile, self.band_rows
        pw = x1p - x0p
        self._px0, self._pw = x0p, pw
        acc, wacc = self._acc[:, :pw], self._wacc[:, :pw]
        acc.fill(0.0)
        wacc.fill(0.0)
        self._row_copied.fill(False)
        carry_out: list[np.ndarray] = []
        for r, y0 in enumerate(self.ys):
            rows_in = self._row_slice[r]
            # a view: this tile row reads all of it before any of its rows is written; reflected
            # rows (an image shorter than a tile) are gathered tile by tile, never as a T x W band
            band = st.image if rows_in is None else st.image[rows_in]
            if c0 > 0 and carry_in[r].shape[1]:  # the previous panel's last tile here: first, as in one band
                self._place(carry_in[r], r, c0 - 1, x0p - self.xs[c0 - 1], st)
            for c in range(c0, c1):
                result = self._tile_result(band, r, c, st)[:hb]
                inside = min(t, self.width - self.xs[c])
                if c == c1 - 1 and c1 < len(self.xs):  # its part in the next panel (the overlap)
                    carry_out.append(result[:, x1p - self.xs[c] : inside].copy())
                self._place(result[:, : min(inside, x1p - self.xs[c])], r, c, 0, st)
                st.done += 1
                if st.progress is not None:
                    st.progress(st.done, st.total)
            lo, hi = self.row_spans[r]
            if hi > lo:
                a, b = lo - y0, hi - y0
                if st.copy_pixels:
                    st.sink(lo, x0p, self._finish_pixels(a, b, p))
                else:
                    st.sink(lo, x0p, _to_dtype(_normalized(acc[a:b], wacc[a:b]), st.out_dtype, st.out_max))
            if r < len(self.ys) - 1:
                shift = self.ys[r + 1] - y0
                keep = t - shift
                bands = (acc, wacc, self._row_copied) + ((self._band_out[:, :pw],) if st.copy_pixels else ())
                for band_buf in bands:
                    band_buf[:keep] = band_buf[shift:]
                    band_buf[keep:] = 0
        return carry_out

    def _tile_result(self, band: np.ndarray, r: int, c: int, st: "_RunState") -> np.ndarray:
        """Tile (r, c) through the model: (T, T, Ci) floats in [0, 1], or uint8 from `run_pixels`."""
        raw, rows_in, cols_in = self._raw, self._row_slice[r], self._col_slice[c]
        assert raw is not None
        if self._pixels_in and cols_in is not None and rows_in is not None:  # the image's own pixels
            return st.run_pixels(band[None, :, cols_in])[0]
        src = band[:, cols_in] if cols_in is not None else np.take(band, self.col_index[c], axis=1)
        if rows_in is None:
            np.take(src, self.row_index[r], axis=0, out=raw[0])
        else:
            raw[0] = src
        if self._pixels_in:
            return st.run_pixels(raw)[0]
        np.multiply(raw[0], st.in_scale, out=self._tile_f, casting="unsafe")
        if st.image.dtype.kind == "f":
            np.clip(self._tile_f, 0.0, 1.0, out=self._tile_f)
        return self._run_tile(st.run)

    def _place(self, result: np.ndarray, r: int, c: int, ca: int, st: "_RunState") -> None:
        """Add tile (r, c)'s result on its columns [ca, ca + result width) into the panel's band."""
        if st.copy_pixels is None:  # set by the first tile: a uint8 result into a uint8 output
            st.copy_pixels = result.dtype == np.uint8 and st.out_dtype == np.uint8
        cb = ca + result.shape[1]
        if st.copy_pixels:
            self._place_pixels(result, r, c, ca, cb)
            return
        if result.dtype == np.uint8:  # pixels into a non-8-bit output: blend them all
            result = pixels_to_unit(result, self._res[: result.shape[0], : result.shape[1]])
        self._blend(result, r, c, slice(0, result.shape[0]), slice(ca, cb))

    def _blend(self, values: np.ndarray, r: int, c: int, rows: slice, cols: slice) -> None:
        """Add `values` (floats in [0, 1] of the tile's rows x cols) x the tile's weights into the band."""
        x0, wpart = self.xs[c] - self._px0, self._weights.get(r, c)[rows, cols]
        weighted = self._weighted[: wpart.shape[0], : wpart.shape[1]]
        np.multiply(values, wpart[..., None], out=weighted)
        self._acc[rows, x0 + cols.start : x0 + cols.stop] += weighted
        self._wacc[rows, x0 + cols.start : x0 + cols.stop] += wpart

    def _place_pixels(self, pixels: np.ndarray, r: int, c: int, ca: int, cb: int) -> None:
        """Copy a uint8 tile's interior (window 1) into the output band and blend its frame: where
        the window is 1 no other tile has weight, so the copy is the blended result, bit for bit.
        `pixels` holds the tile's columns [ca, cb)."""
        t, x0 = self.band_rows, self.xs[c] - self._px0
        if self._band_out is None:
            self._band_out = np.zeros((t, self.band_columns, self.image_channels), np.uint8)
        ya, yb = self.y_ones[r]
        xa, xb = max(self.x_ones[c][0], ca), min(self.x_ones[c][1], cb)
        if yb <= ya or xb <= xa:  # no interior: all frame
            ya = yb = 0
            xa = xb = ca
        else:
            self._band_out[ya:yb, x0 + xa : x0 + xb] = pixels[ya:yb, xa - ca : xb - ca]
            self._row_copied[ya:yb] = True
        frame = ((slice(0, ya), slice(ca, cb)), (slice(yb, t), slice(ca, cb)),
                 (slice(ya, yb), slice(ca, xa)), (slice(ya, yb), slice(xb, cb)))
        for rows, cols in frame:
            part = pixels[rows, cols.start - ca : cols.stop - ca]
            if part.size:
                self._blend(pixels_to_unit(part, self._res[: part.shape[0], : part.shape[1]]), r, c, rows, cols)

    def _finish_pixels(self, a: int, b: int, panel: int) -> np.ndarray:
        """Band rows [a, b) as uint8: copied pixels as they are, the rest blended from the floats."""
        band, copied, pw = self._band_out, self._row_copied, self._pw
        assert band is not None
        edges = [a] + [a + 1 + int(i) for i in np.flatnonzero(copied[a + 1 : b] != copied[a : b - 1])] + [b]
        for y, z in zip(edges[:-1], edges[1:]):
            for cols in (self._panel_blend_cols[panel] if copied[y] else [slice(0, pw)]):
                blended = _normalized(self._acc[y:z, cols], self._wacc[y:z, cols])
                band[y:z, cols] = _to_dtype(blended, np.dtype(np.uint8), 255.0)
        return band[a:b, :pw]


class _RunState:
    """What one `Tiler.run` call passes to its panels."""

    def __init__(self, image: np.ndarray, run: RunTile, run_pixels: RunTile | None, sink: RowSink,
                 out_dtype: np.dtype, out_max: float, in_scale: float,
                 progress: Callable[[int, int], None] | None, total: int) -> None:
        self.image, self.run, self.run_pixels, self.sink = image, run, run_pixels, sink
        self.out_dtype, self.out_max, self.in_scale = out_dtype, out_max, in_scale
        self.progress, self.total, self.done = progress, total, 0
        self.copy_pixels: bool | None = None


class _WeightCache:
    """The (T, T) blending weights wy[r] x wx[c] of each tile, computed once per distinct pair of
    axis windows (a grid has at most a few: first, inner, last, moved-back last) and reused."""

    def __init__(self, wy: list[np.ndarray], wx: list[np.ndarray]) -> None:
        self._wy, self._wx = wy, wx
        self._ky, self._kx = _window_keys(wy), _window_keys(wx)
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def get(self, r: int, c: int) -> np.ndarray:
        key = (self._ky[r], self._kx[c])
        w = self._cache.get(key)
        if w is None:
            w = self._cache[key] = np.multiply(self._wy[r][:, None], self._wx[c][None, :], dtype=np.float32)
        return w


def _as_slice(index: np.ndarray) -> slice | None:
    """The slice equal to an index array of consecutive positions, else None."""
    start = int(index[0])
    return slice(start, start + index.size) if np.array_equal(index, np.arange(start, start + index.size)) else None


def _window_keys(windows: list[np.ndarray]) -> list[int]:
    """For each window, the index of the first window equal to it."""
    first: dict[bytes, int] = {}
    return [first.setdefault(w.tobytes(), i) for i, w in enumerate(windows)]


def _same_buffer(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether a and b are views of the very same elements (same start, shape, strides, dtype)."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
    )


def _normalized(acc: np.ndarray, wacc: np.ndarray) -> np.ndarray:
    """Accumulated weighted values divided by their accumulated weights (a new array)."""
    return acc / np.maximum(wacc, 1e-12)[..., None]


def _to_dtype(rows: np.ndarray, dtype: np.dtype, max_value: float) -> np.ndarray:
    np.clip(rows, 0.0, 1.0, out=rows)
    if dtype.kind == "f":
        return rows.astype(dtype, copy=False)
    rows *= max_value
    np.rint(rows, out=rows)
    return rows.astype(dtype)


def restore_tiled(
    image: np.ndarray,
    run: RunTile,
    tile: int,
    overlap: int,
    model_channels: int = 3,
    out: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """One-shot helper: `Tiler(...).run(image, run, out)` for an (H, W, C) image."""
    tiler = Tiler(image.shape[0], image.shape[1], tile, overlap, image.shape[2], model_channels)
    result = tiler.run(image, run, out=out, progress=progress)
    assert result is not None
    return result
