"""Tiling: reflection indexing, blend windows, whole-image equivalence, tiny sizes, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime import FrameStream, load_model
from edge_runtime.metrics import psnr
from edge_runtime.tiling import (
    Tiler,
    axis_windows,
    blend_ramp,
    pixels_to_unit,
    reflect_indices,
    restore_tiled,
    tile_starts,
)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 32])
@pytest.mark.parametrize("pad", [1, 4, 40])
def test_reflect_indices_match_np_pad(n, pad):
    a = np.arange(n)
    mode = "reflect" if n > 1 else "edge"
    assert np.array_equal(a[reflect_indices(-pad, n + pad, n)], np.pad(a, pad, mode=mode))


@pytest.mark.parametrize("overlap", [0, 1, 2, 4, 5, 16, 31])
def test_blend_ramps_of_neighbours_sum_to_one(overlap):
    ramp = blend_ramp(overlap)
    assert np.allclose(ramp + ramp[::-1], 1.0)
    if overlap >= 4:
        assert ramp[0] == 0.0 and ramp[-1] == 1.0  # outer pixels (model zero padding) are ignored


@pytest.mark.parametrize("size", [1, 5, 28, 29, 32, 33, 57, 64, 100, 1000])
def test_windows_cover_every_pixel_with_total_weight_one(size):
    tile, overlap = 32, 8
    starts = tile_starts(size, tile, overlap)
    total = np.zeros(size + tile)
    for s, w in zip(starts, axis_windows(starts, tile, overlap)):
        total[s : s + tile] += w
    assert np.allclose(total[:size], 1.0)
    assert starts[0] == 0 and starts == sorted(set(starts))
    if size >= tile:  # every tile inside the image, the last one ending at its end
        assert starts[-1] + tile == size and all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    else:
        assert starts == [0]


def test_float_tiled_matches_whole_image_inference_50db(float_model, model_dir):
    """Tiled TFLite (fixed 32x32 tile) vs one whole-image run of the dynamic ONNX twin."""
    model = load_model(float_model)
    whole = load_model(model_dir / "float_dynamic.onnx").backend
    rng = np.random.default_rng(0)
    image = rng.random((77, 101, 3), dtype=np.float32)  # not a multiple of anything
    tiled = model.restore(image)
    reference = whole.run(image[None])[0]  # the model's own zero padding at the image border
    assert tiled.shape == image.shape and tiled.dtype == np.float32
    assert psnr(tiled, reference) >= 50.0
    assert model.stats.tiles == len(tile_starts(77, 32, 4)) * len(tile_starts(101, 32, 4))


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (5, 7), (1, 9), (31, 33), (32, 32), (64, 36), (65, 97)])
def test_any_size_matches_numpy_reference(float_model, reference, shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.random((*shape, 3), dtype=np.float32)
    out = load_model(float_model).restore(image)
    assert out.shape == image.shape
    assert psnr(out, reference(image)) >= 50.0


@pytest.mark.parametrize("name,min_db", [("int8.tflite", 38.0), ("uint8.tflite", 38.0), ("float_static.onnx", 50.0)])
def test_quantized_and_onnx_models_close_to_reference(model_dir, reference, name, min_db):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    out = load_model(model_dir / name).restore(image)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert psnr(out / 255.0, reference(image / 255.0)) >= min_db


def test_dtypes_and_shapes_are_preserved(int8_model):
    model = load_model(int8_model)
    rng = np.random.default_rng(1)
    cases = [
        rng.integers(0, 256, (9, 11, 3), dtype=np.uint8),
        rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16),
        rng.random((9, 11, 3)).astype(np.float32),
        rng.random((9, 11, 3)),  # float64
        rng.integers(0, 256, (9, 11), dtype=np.uint8),  # gray HxW
        rng.integers(0, 256, (9, 11, 1), dtype=np.uint8),
        rng.integers(0, 256, (9, 11, 4), dtype=np.uint8),  # RGBA
    ]
    for image in cases:
        out = model.restore(image)
        assert out.shape == image.shape and out.dtype == image.dtype
        if image.dtype.kind == "f":
            assert out.min() >= 0.0 and out.max() <= 1.0
    rgba = cases[-1]
    assert np.array_equal(model.restore(rgba)[..., 3], rgba[..., 3])  # alpha untouched


def test_gray_is_replicated_then_averaged(float_model):
    model = load_model(float_model)
    gray = np.random.default_rng(2).random((20, 24), dtype=np.float32)
    rgb_out = model.restore(np.repeat(gray[..., None], 3, axis=2))
    assert np.allclose(model.restore(gray), rgb_out.mean(axis=2), atol=1e-6)


def test_rows_are_written_in_order_once_and_memory_is_one_band(float_model):
    model = load_model(float_model)
    h, w = 150, 40
    tiler = model.tiler(h, w, 3)
    # Accumulators hold one band of tile rows, not the image.
    assert tiler._acc.shape == (32, w, 3) and tiler._wacc.shape == (32, w)
    image = np.random.default_rng(4).integers(0, 256, (h, w, 3), dtype=np.uint8)
    received: list[tuple[int, int]] = []
    rows_out = np.zeros_like(image)

    def sink(row: int, col: int, rows: np.ndarray) -> None:
        assert rows.dtype == np.uint8 and col == 0 and rows.shape[1] == w
        received.append((row, rows.shape[0]))
        rows_out[row : row + rows.shape[0]] = rows

    assert tiler.run(image, model.run_tile, sink=sink) is None
    starts = [r for r, _ in received]
    assert starts == sorted(starts) and starts[0] == 0
    assert sum(n for _, n in received) == h  # each row exactly once
    assert all(n <= 32 for _, n in received)
    assert np.array_equal(rows_out, model.restore(image))


def test_overlap_zero_and_custom_overlap(float_model, reference):
    image = np.random.default_rng(5).random((40, 50, 3), dtype=np.float32)
    wide = load_model(float_model, overlap=12).restore(image)
    assert psnr(wide, reference(image)) >= 50.0
    # Without overlap the model's zero padding shows at tile seams: still close, but not exact.
    seams = load_model(float_model, overlap=0).restore(image)
    assert 25.0 < psnr(seams, reference(image)) < 50.0


def test_invalid_overlap_rejected(float_model):
    from edge_runtime.errors import UsageError

    with pytest.raises(UsageError, match="overlap"):  # the caller's value, not the model's: exit 1 (issue 18)
        load_model(float_model, overlap=16)
    with pytest.raises(ValueError):
        Tiler(10, 10, 32, 20)


def test_frame_stream_reuses_buffers_and_matches_restore(int8_model):
    model = load_model(int8_model)
    stream = FrameStream(model, 48, 64)
    rng = np.random.default_rng(6)
    f1 = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    f2 = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out1 = stream.process(f1)
    expected1 = out1.copy()
    out2 = stream.process(f2)
    assert out2 is out1  # the same preallocated buffer
    assert np.array_equal(expected1, model.restore(f1))
    assert np.array_equal(out2, model.restore(f2))
    band = stream._tiler._acc
    stream.process(f1)
    assert stream._tiler._acc is band and stream.frames == 3
    mine = np.empty_like(f1)
    assert stream.process(f1, out=mine) is mine and np.array_equal(mine, expected1)
    with pytest.raises(ValueError):
        stream.process(f1[:10])


def test_frame_stream_gray_and_rgba(int8_model):
    model = load_model(int8_model)
    gray = np.random.default_rng(7).integers(0, 256, (20, 30), dtype=np.uint8)
    assert np.array_equal(FrameStream(model, 20, 30, channels=1).process(gray), model.restore(gray))
    rgba = np.random.default_rng(8).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    out = FrameStream(model, 20, 30, channels=4).process(rgba)
    assert np.array_equal(out, model.restore(rgba)) and np.array_equal(out[..., 3], rgba[..., 3])


def test_restore_tiled_with_plain_function():
    identity = lambda tile: tile  # noqa: E731
    image = np.random.default_rng(9).integers(0, 65536, (13, 17, 3), dtype=np.uint16)
    assert np.array_equal(restore_tiled(image, identity, 8, 2), image)


def test_gray_model_runs_colour_images_channel_by_channel():
    calls = []

    def gray_model(tile):
        assert tile.shape == (1, 8, 8, 1)
        calls.append(1)
        return 1.0 - tile

    image = np.random.default_rng(10).random((10, 12, 3)).astype(np.float32)
    out = restore_tiled(image, gray_model, 8, 2, model_channels=1)
    assert np.allclose(out, 1.0 - image, atol=1e-6)
    assert len(calls) == 3 * len(tile_starts(10, 8, 2)) * len(tile_starts(12, 8, 2))


def test_gray_alpha_array_keeps_alpha(int8_model):
    la = np.random.default_rng(11).integers(0, 256, (9, 13, 2), dtype=np.uint8)
    out = load_model(int8_model).restore(la)
    assert out.shape == la.shape and np.array_equal(out[..., 1], la[..., 1])


def _tile_mean_model(tile: np.ndarray) -> np.ndarray:
    """A tile function whose every output pixel depends on every input row of its tile.

    A row read after an in-place run had overwritten it changes the whole tile's output, so
    the in-place tests below cannot pass by luck (a 3x3 model only sees the rows next to it).
    """
    return np.clip(0.6 * tile + 0.4 * tile.mean(axis=(1, 2), keepdims=True), 0.0, 1.0)


# Heights 1..31 fit one tile row; the others take several, the last one moved back to end at the
# image's end (so it re-reads rows above its neighbour's start, which are not yet written).
IN_PLACE_SHAPES = [(1, 1), (7, 5), (5, 7), (1, 40), (29, 3), (31, 33), (45, 17), (60, 1), (64, 36), (83, 20), (97, 65), (150, 9)]


@pytest.mark.parametrize("shape", IN_PLACE_SHAPES)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_in_place_equals_separate_output_bit_exact(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    if dtype == np.float32:
        image = rng.random((*shape, 3), dtype=np.float32)
    else:
        image = rng.integers(0, np.iinfo(dtype).max + 1, (*shape, 3)).astype(dtype)
    tiler = Tiler(shape[0], shape[1], 32, 4)
    expected = tiler.run(image, _tile_mean_model)
    work = image.copy()
    assert tiler.run(work, _tile_mean_model, out=work) is work
    assert np.array_equal(work, expected)
    again = image.copy()  # the same tiler again: nothing of the first in-place run is left over
    assert np.array_equal(tiler.run(again, _tile_mean_model, out=again), expected)


def test_no_tile_row_reads_a_row_an_earlier_one_wrote():
    for h in [*(h for h, _ in IN_PLACE_SHAPES), *range(1, 300)]:
        tiler = Tiler(h, 3, 32, 4)
        assert tiler.in_place_safe
        spans = tiler.row_spans
        assert spans[0][0] == 0 and spans[-1][1] == h  # the written spans tile the image
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        for r in range(1, len(spans)):  # every later tile row reads only rows not yet written
            assert tiler.row_index[r].min() >= spans[r - 1][1]


def test_in_place_with_real_models_and_gray(int8_model, float_model):
    for path, shape in ((int8_model, (83, 47, 3)), (float_model, (45, 31, 3)), (int8_model, (7, 5, 3)), (int8_model, (61, 29, 1))):
        model = load_model(path)
        image = np.random.default_rng(shape[0]).integers(0, 256, shape, dtype=np.uint8)
        expected = model.restore(image)
        work = image.copy()
        model.tiler(*shape).run(work, model.run_tile, out=work)
        assert np.array_equal(work, expected.reshape(shape)), (path.name, shape)


def test_partially_overlapping_output_is_refused():
    image = np.zeros((40, 10, 3), np.uint8)
    buffer = np.zeros((41, 10, 3), np.uint8)
    with pytest.raises(ValueError, match="overlaps image"):
        Tiler(40, 10, 32, 4).run(buffer[:40], _tile_mean_model, out=buffer[1:])
    assert Tiler(40, 10, 32, 4).run(image, _tile_mean_model, out=np.zeros_like(image)) is not None


@pytest.mark.parametrize("shape", [(7, 5, 3), (83, 47, 3), (64, 96, 3), (61, 29, 1)])
def test_8bit_images_take_the_pixel_path_with_identical_output(int8_model, shape):
    model = load_model(int8_model)
    image = np.random.default_rng(shape[1]).integers(0, 256, shape, dtype=np.uint8)
    tiler = model.tiler(*shape)
    through_float = tiler.run(image, model.run_tile)
    calls = []

    def counted(tile):
        calls.append(tile.dtype)
        return model.pixel_runner(tile)

    assert np.array_equal(tiler.run(image, model.run_tile, run_pixels=counted), through_float)
    # colour images go through the pixel path; gray is replicated to 3 channels in float
    assert calls == ([np.uint8] * tiler.tiles if shape[2] == 3 else [])
    assert np.array_equal(model.restore(image), through_float)


def _pixel_model(pixels: np.ndarray) -> np.ndarray:
    """A uint8 -> uint8 tile function that differs per tile position and per tile content, so a
    copied interior or a mis-blended frame shows (its float twin is `_pixel_model_float`)."""
    t = pixels.shape[1]
    ramp = (np.arange(t)[:, None] * 7 + np.arange(t)[None, :] * 3).astype(np.int32)[None, ..., None]
    mean = int(pixels.mean())  # the tile's content: a neighbour's output differs on the overlap
    return ((pixels.astype(np.int32) * 5 + ramp + mean) % 256).astype(np.uint8)


def _pixel_model_float(tile: np.ndarray) -> np.ndarray:
    pixels = np.rint(tile * 255.0).astype(np.uint8)
    return pixels_to_unit(_pixel_model(pixels), np.empty(tile.shape, np.float32))


@pytest.mark.parametrize("shape", [*IN_PLACE_SHAPES, (200, 301), (77, 130)])
@pytest.mark.parametrize("overlap", [0, 4, 9])
def test_copied_pixel_tiles_equal_float_blending_bit_for_bit(shape, overlap):
    image = np.random.default_rng(sum(shape) + overlap).integers(0, 256, (*shape, 3), dtype=np.uint8)
    tiler = Tiler(shape[0], shape[1], 32, overlap)
    expected = tiler.run(image, _pixel_model_float)
    assert np.array_equal(tiler.run(image, _pixel_model_float, run_pixels=_pixel_model), expected)
    work = image.copy()  # in place, and the tiler's buffers reused from the run before
    assert np.array_equal(tiler.run(work, _pixel_model_float, out=work, run_pixels=_pixel_model), expected)
    # a float output takes the pixels through the float blend: the same values before rounding
    as_float = tiler.run(image, _pixel_model_float, out=np.empty(image.shape, np.float32), run_pixels=_pixel_model)
    assert np.array_equal(np.rint(as_float * 255).astype(np.uint8), expected)


def test_copy_path_blends_only_the_frame():
    tiler = Tiler(100, 301, 32, 8)
    # interiors: every tile's window is 1 on one span; columns no interior covers are blended
    assert all(b > a for a, b in tiler.x_ones + tiler.y_ones)
    blended = sum(s.stop - s.start for s in tiler.blend_cols)
    assert 0 < blended < 0.3 * 301
    for s in tiler.blend_cols:  # exactly the columns where every tile's weight is below 1
        for x in range(s.start, s.stop):
            assert all(w[x - x0] < 1 for x0, w in zip(tiler.xs, tiler.wx) if 0 <= x - x0 < 32)


def test_exported_model_output_is_copied_and_matches_the_float_path(model_dir):
    model = load_model(model_dir / "exported_int8.tflite")
    assert model.backend.gives_pixels
    shape = (83, 120, 3)
    image = np.random.default_rng(5).integers(0, 256, shape, dtype=np.uint8)
    tiler = model.tiler(*shape)
    through_float = tiler.run(image, model.run_tile)
    assert np.array_equal(model.restore(image), through_float)
