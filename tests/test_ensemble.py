"""Self-ensembling (--ensemble / --pixel-shuffle): exact views, the shuffle's bookkeeping, and
what it does to real models on correlated and on white noise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_runtime import load_model
from edge_runtime.api import FrameStream
from edge_runtime.cli import main
from edge_runtime.ensemble import check_views, ensemble_tile, shuffled_restore, sub_images, undo_view, view_of
from edge_runtime.errors import UsageError
from edge_runtime.metrics import psnr
from edge_runtime.tiling import Tiler, tile_count

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "models" / "denoise_real_int8.tflite"
MAIN = ROOT / "models" / "denoise_int8.tflite"
skimage_data = pytest.importorskip("skimage.data")


def test_every_view_is_undone_exactly():
    tile = np.random.default_rng(0).random((1, 8, 8, 3), dtype=np.float32)
    for k in range(8):
        v = view_of(tile, k)
        assert v.flags.c_contiguous and v.shape == tile.shape
        assert np.array_equal(undo_view(v, k), tile)
    assert len({view_of(tile, k).tobytes() for k in range(8)}) == 8  # eight distinct views


def test_ensemble_tile_averages_a_model_over_its_views():
    tile = np.random.default_rng(1).random((1, 6, 6, 1), dtype=np.float32)
    ramp = np.arange(6, dtype=np.float32)[None, None, :, None]  # a "model" that is not flip-equivariant
    out = ensemble_tile(lambda t: t + ramp, tile, 2)
    assert np.allclose(out, tile + 2.5)  # (ramp + flipped ramp) / 2
    assert np.allclose(ensemble_tile(lambda t: t * 2, tile, 8), tile * 2)  # an equivariant one is unchanged


def test_view_counts_are_checked():
    assert [check_views(n) for n in (1, 2, 4, 8)] == [1, 2, 4, 8]
    for bad in (0, 3, 16, True, "2", 2.0):
        with pytest.raises(UsageError, match="ensemble views"):
            check_views(bad)


def test_sub_images_cover_every_pixel_once():
    for h, w in ((5, 7), (1, 4), (1, 1), (6, 6)):
        count = np.zeros((h, w), int)
        for rows, cols in sub_images(h, w):
            count[rows, cols] += 1
        assert (count == 1).all()


class IdentityModel:
    """A model that returns its input: the shuffle's mean of identical results is the image."""

    tile_size, overlap, pixel_runner = 4, 1, None

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def tiler(self, height: int, width: int, channels: int) -> Tiler:
        self.shapes.append((height, width))
        return Tiler(height, width, self.tile_size, self.overlap, channels, channels)

    def run_tile(self, tile: np.ndarray) -> np.ndarray:
        return tile


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_shuffled_restore_is_exact_for_an_identity_model_and_counts_progress(dtype):
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (9, 11, 3)).astype(dtype) if dtype != np.float32 else rng.random((9, 11, 3), dtype)
    model, seen = IdentityModel(), []
    out = np.empty_like(image)
    shuffled_restore(image, out, model, lambda done, total: seen.append((done, total)))
    if dtype == np.float32:
        assert np.allclose(out, image, atol=1e-6)
    else:
        assert np.array_equal(out, image)
    assert model.shapes == [(5, 6), (5, 5), (4, 6), (4, 5), (9, 11)]
    total = seen[-1][1]
    assert total == tile_count(5, 6, 4, 1) + tile_count(5, 5, 4, 1) + tile_count(4, 6, 4, 1) + tile_count(4, 5, 4, 1) \
        + tile_count(9, 11, 4, 1)
    assert [d for d, _ in seen] == list(range(1, total + 1))
    in_place = image.copy()
    shuffled_restore(in_place, in_place, IdentityModel())
    assert np.array_equal(in_place, out)


def correlated_noise_photo() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A crop with camera-like noise (white noise blurred by 1 px, as demosaicing does) and one with
    white noise sigma 15."""
    from scipy.ndimage import gaussian_filter

    clean = skimage_data.astronaut()[:192, 160:352].astype(np.float32) / 255
    rng = np.random.default_rng(3)
    w = rng.normal(0, 1, clean.shape).astype(np.float32)
    grain = np.stack([gaussian_filter(w[..., k], 1.0) for k in range(3)], -1)
    grain /= grain.std()
    to8 = lambda x: np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)  # noqa: E731
    return clean, to8(clean + grain * 6 / 255), to8(clean + rng.normal(0, 15 / 255, clean.shape))


def score(model_path: Path, image: np.ndarray, clean: np.ndarray, **kw) -> float:
    return psnr(load_model(model_path, threads=1, **kw).restore(image).astype(np.float32) / 255, clean)


def test_pixel_shuffle_helps_on_correlated_noise_and_hurts_on_white_noise():
    clean, camera, white = correlated_noise_photo()
    plain = score(REAL, camera, clean)
    assert score(REAL, camera, clean, pixel_shuffle=True) > plain + 0.05
    assert score(REAL, white, clean, pixel_shuffle=True) < score(REAL, white, clean) - 0.3


def test_geometric_views_help_on_both_noises():
    clean, camera, white = correlated_noise_photo()
    assert score(REAL, camera, clean, views=4) > score(REAL, camera, clean) + 0.05
    assert score(MAIN, white, clean, views=4) > score(MAIN, white, clean) + 0.05


def test_in_place_and_stream_give_the_same_result():
    _, camera, _ = correlated_noise_photo()
    model = load_model(REAL, threads=1, views=2, pixel_shuffle=True)
    expected = model.restore(camera)
    in_place = camera.copy()
    model.restore_into(in_place, in_place)
    assert np.array_equal(in_place, expected)
    assert np.array_equal(FrameStream(model, *camera.shape[:2]).process(camera), expected)
    assert model.stats.tiles > 0 and not np.array_equal(expected, load_model(REAL, threads=1).restore(camera))


def write_png(path: Path, pixels: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(pixels).save(path)
    return path


def test_cli_runs_the_ensemble_and_records_it(tmp_path, capsys):
    _, camera, _ = correlated_noise_photo()
    photo = write_png(tmp_path / "phone.png", camera)
    rc = main(["--model", str(REAL), "--ensemble", "2", "--pixel-shuffle", str(photo), "-o", str(tmp_path / "e.png"),
               "--json", str(tmp_path / "m.json"), "-q"])
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["ensemble"] == {"views": 2, "pixel_shuffle": True}
    from PIL import Image

    expected = load_model(REAL, threads=1, views=2, pixel_shuffle=True).restore(camera)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "e.png")), expected)


@pytest.mark.parametrize("argv, message", [
    (["--ensemble", "3"], "must be one of 1, 2, 4, 8"),
    (["--ensemble", "2", "--kernel", "motion:9,0"], "--ensemble and --pixel-shuffle go with denoising"),
    (["--pixel-shuffle", "--kernel", "motion:9,0"], "--ensemble and --pixel-shuffle go with denoising"),
])
def test_cli_refuses_bad_ensemble_options(tmp_path, capsys, argv, message):
    photo = write_png(tmp_path / "p.png", np.zeros((32, 32, 3), np.uint8))
    out = tmp_path / "o.png"
    rc = main(["--model", str(MAIN), *argv, str(photo), "-o", str(out)])
    assert rc == 1 and message in capsys.readouterr().err and not out.exists()


def test_cli_refuses_ensemble_with_classic(tmp_path, capsys):
    photo = write_png(tmp_path / "p.png", np.zeros((32, 32, 3), np.uint8))
    rc = main(["--classic", "nlm", "--pixel-shuffle", str(photo), "-o", str(tmp_path / "o.png")])
    assert rc == 1 and "--ensemble and --pixel-shuffle go with --model" in capsys.readouterr().err


def test_shuffled_restore_refuses_an_output_overlapping_its_input():
    buffer = np.zeros((10, 11, 3), np.uint8)
    with pytest.raises(ValueError, match="overlaps image"):
        shuffled_restore(buffer[:9], buffer[1:], IdentityModel())
