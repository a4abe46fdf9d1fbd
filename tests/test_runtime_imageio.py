"""Image IO: orientation, ICC/EXIF, 16-bit, gray, alpha, palette/CMYK, frames, bombs, atomic writes."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from edge_runtime import InputImageError, MissingInputError, OutputWriteError, imageio, png16, tiff16
from edge_runtime.errors import UsageError

RNG = np.random.default_rng(42)
RGB = RNG.integers(0, 256, (6, 9, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0110] = "Model 1"  # Model
    if orientation is not None:
        exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_applied_like_exif_transpose(tmp_path, orientation):
    path = tmp_path / "o.jpg"
    Image.fromarray(RGB).save(path, exif=_exif(orientation).tobytes(), quality=100)
    picture = imageio.read_image(path)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(picture.color, expected)
    assert 0x0112 not in picture.exif and picture.exif[0x010F] == "TestCam"


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp"])
def test_icc_and_exif_kept_and_orientation_cleared(tmp_path, srgb_icc, ext):
    src = tmp_path / "in.png"
    Image.fromarray(RGB).save(src, exif=_exif(6).tobytes(), icc_profile=srgb_icc)
    picture = imageio.read_image(src)
    assert picture.color.shape == (9, 6, 3)  # rotated
    dst = tmp_path / f"out{ext}"
    imageio.write_image(dst, picture)
    with Image.open(dst) as out:
        assert out.info.get("icc_profile") == srgb_icc
        exif = out.getexif()
        assert exif.get(0x010F) == "TestCam" and exif.get(0x0110) == "Model 1"
        assert 0x0112 not in exif
        assert out.size == (6, 9)


def test_tiff_layout_tags_are_not_copied_as_exif(tmp_path):
    src = tmp_path / "in.tif"
    Image.fromarray(RGB).save(src, exif=_exif().tobytes())
    picture = imageio.read_image(src)
    assert set(picture.exif) == {0x010F, 0x0110}
    imageio.write_image(tmp_path / "out.jpg", picture)
    assert Image.open(tmp_path / "out.jpg").getexif().get(0x010F) == "TestCam"


def test_png16_rgb_round_trip_is_lossless(tmp_path, srgb_icc):
    pixels = RNG.integers(0, 65536, (7, 5, 3), dtype=np.uint16)
    src = tmp_path / "in16.png"
    src.write_bytes(png16.encode(pixels, icc_profile=srgb_icc, exif=_exif(3).tobytes()))
    picture = imageio.read_image(src)
    assert picture.bits == 16 and picture.color.dtype == np.uint16
    assert np.array_equal(picture.color, pixels[::-1, ::-1])  # orientation 3 = rotate 180
    assert picture.icc_profile == srgb_icc
    imageio.write_image(tmp_path / "out16.png", picture)
    back, info = png16.decode((tmp_path / "out16.png").read_bytes())
    assert np.array_equal(back, picture.color) and info["icc_profile"] == srgb_icc
    assert Image.open(tmp_path / "out16.png").getexif().get(0x010F) == "TestCam"


def test_png16_rgba_and_gray_alpha_keep_alpha(tmp_path):
    for channels in (2, 4):
        pixels = RNG.integers(0, 65536, (6, 8, channels), dtype=np.uint16)
        src = tmp_path / f"in{channels}.png"
        src.write_bytes(png16.encode(pixels))
        picture = imageio.read_image(src)
        assert np.array_equal(picture.alpha, pixels[..., -1])
        assert np.array_equal(picture.color, pixels[..., :-1])
        imageio.write_image(tmp_path / f"out{channels}.png", picture)
        assert np.array_equal(png16.decode((tmp_path / f"out{channels}.png").read_bytes())[0], pixels)


def test_png16_decoder_matches_libpng_filters():
    cv2 = pytest.importorskip("cv2")
    y, x = np.mgrid[0:40, 0:50]
    smooth = np.stack([y * 1500, x * 1200, (x + y) * 700], axis=2).astype(np.uint16)  # libpng picks Paeth/Avg
    for pixels in (smooth, RNG.integers(0, 65536, (40, 50, 3), dtype=np.uint16)):
        ok, buf = cv2.imencode(".png", pixels[..., ::-1])
        decoded, _ = png16.decode(buf.tobytes())
        assert np.array_equal(decoded, pixels)
        ours = cv2.imdecode(np.frombuffer(png16.encode(pixels), np.uint8), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(ours[..., ::-1], pixels)


def test_png16_unfilter_paeth_and_average_rows():
    """All five filter types in one image, against a direct per-pixel implementation."""
    h, w, bpp = 5, 6, 6
    filtered = RNG.integers(0, 256, (h, w, bpp), dtype=np.uint8)
    ftypes = np.array([0, 1, 2, 3, 4], np.uint8)
    expected = np.zeros((h, w, bpp), np.int32)
    for yy in range(h):
        for xx in range(w):
            a = expected[yy, xx - 1] if xx else np.zeros(bpp, np.int32)
            b = expected[yy - 1, xx] if yy else np.zeros(bpp, np.int32)
            c = expected[yy - 1, xx - 1] if xx and yy else np.zeros(bpp, np.int32)
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
            pred = [np.zeros(bpp, np.int32), a, b, (a + b) // 2, paeth][ftypes[yy]]
            expected[yy, xx] = (filtered[yy, xx] + pred) % 256
    assert np.array_equal(png16.unfilter(ftypes, filtered), expected)


def test_gray16_png_and_tiff_stay_16bit(tmp_path):
    gray = RNG.integers(0, 65536, (5, 7), dtype=np.uint16)
    for ext in (".png", ".tif"):
        src = tmp_path / f"g{ext}"
        Image.fromarray(gray).save(src)
        picture = imageio.read_image(src)
        assert picture.is_gray and picture.bits == 16
        assert np.array_equal(picture.color[..., 0], gray)
        for out_ext in (".png", ".tif"):
            dst = tmp_path / f"g_out{ext}{out_ext}"
            imageio.write_image(dst, picture)
            with Image.open(dst) as im:
                assert im.mode.startswith("I;16") and np.array_equal(np.asarray(im), gray)


def test_tiff16_rgb_read_and_written_losslessly(tmp_path, srgb_icc):
    tifffile = pytest.importorskip("tifffile")
    pixels = RNG.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    src = tmp_path / "rgb16.tif"
    tifffile.imwrite(src, pixels, photometric="rgb", compression="zlib", predictor=True, rowsperstrip=4)
    picture = imageio.read_image(src)
    assert picture.bits == 16 and np.array_equal(picture.color, pixels)
    picture.icc_profile = srgb_icc
    dst = tmp_path / "out16.tif"
    imageio.write_image(dst, picture)
    assert np.array_equal(tifffile.imread(dst), pixels)
    again = imageio.read_image(dst)
    assert np.array_equal(again.color, pixels) and again.icc_profile == srgb_icc


def test_sixteen_bit_to_jpeg_is_reduced_with_warning(tmp_path, caplog):
    picture = imageio.Picture(color=np.full((4, 4, 3), 65535, np.uint16))
    with caplog.at_level(logging.WARNING, logger="edge_runtime"):
        imageio.write_image(tmp_path / "o.jpg", picture)
    assert "8 bits" in caplog.text
    assert np.asarray(Image.open(tmp_path / "o.jpg")).min() >= 250


def test_gray_8bit_stays_gray(tmp_path):
    Image.fromarray(RGB[..., 0]).save(tmp_path / "g.png")
    picture = imageio.read_image(tmp_path / "g.png")
    assert picture.color.shape == (6, 9, 1)
    imageio.write_image(tmp_path / "g_out.jpg", picture)
    assert Image.open(tmp_path / "g_out.jpg").mode == "L"


def test_alpha_passed_through(tmp_path):
    rgba = RNG.integers(0, 256, (6, 9, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    picture = imageio.read_image(tmp_path / "a.png")
    assert np.array_equal(picture.alpha, rgba[..., 3]) and picture.color.shape == (6, 9, 3)
    imageio.write_image(tmp_path / "a_out.png", picture)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a_out.png")), rgba)


def test_palette_and_cmyk_become_rgb(tmp_path):
    Image.fromarray(RGB).convert("P").save(tmp_path / "p.png")
    assert imageio.read_image(tmp_path / "p.png").color.shape == (6, 9, 3)
    pal = Image.fromarray(RGB).convert("P")
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pt.png", transparency=0)
    transparent = imageio.read_image(tmp_path / "pt.png")
    assert transparent.color.shape == (6, 9, 3) and transparent.alpha is not None
    Image.fromarray(RGB).convert("CMYK").save(tmp_path / "c.jpg")
    assert imageio.read_image(tmp_path / "c.jpg").color.shape == (6, 9, 3)


def test_multi_frame_uses_first_frame_with_warning(tmp_path, caplog):
    frames = [Image.fromarray(RGB), Image.fromarray(255 - RGB)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with caplog.at_level(logging.WARNING, logger="edge_runtime"):
        picture = imageio.read_image(tmp_path / "anim.gif")
    assert picture.frames == 2 and "only the first frame" in caplog.text
    with Image.open(tmp_path / "anim.gif") as im:
        first = np.asarray(im.convert("RGB"))
        im.seek(1)
        second = np.asarray(im.convert("RGB"))
    assert np.array_equal(picture.color, first) and not np.array_equal(picture.color, second)


def test_pixel_cap_is_checked_before_decoding(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "big.png")
    decoded = []
    monkeypatch.setattr(imageio, "_decode", lambda *a: decoded.append(1))
    with pytest.raises(InputImageError, match="decompression bomb"):
        imageio.read_image(tmp_path / "big.png", max_pixels=9_999)
    assert decoded == []
    imageio.read_image(tmp_path / "big.png", max_pixels=10_000)
    assert decoded == [1]


def test_huge_header_only_bomb_refused(tmp_path):
    """A PNG header claiming 100k x 100k pixels is refused from the header alone."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = png16.SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(bomb)
    with pytest.raises(InputImageError, match="10,000,000,000 pixels exceeds the limit of 50,000,000"):
        imageio.read_image(tmp_path / "bomb.png")


def test_unreadable_truncated_and_missing(tmp_path):
    with pytest.raises(MissingInputError):
        imageio.read_image(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(InputImageError, match="not a readable image"):
        imageio.read_image(tmp_path / "text.png")
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputImageError, match="cannot decode"):
        imageio.read_image(tmp_path / "cut.jpg")
    png = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(png, format="PNG")
    (tmp_path / "cut.png").write_bytes(png.getvalue()[:200])
    with pytest.raises(InputImageError):
        imageio.read_image(tmp_path / "cut.png")
    (tmp_path / "cut16.png").write_bytes(png16.encode(RNG.integers(0, 65536, (30, 30, 3), dtype=np.uint16))[:300])
    with pytest.raises(InputImageError):
        imageio.read_image(tmp_path / "cut16.png")


def test_atomic_write_leaves_no_temp_on_failure(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def explode(fh):
        fh.write(b"partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        imageio.atomic_write(target, explode)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]
    with pytest.raises(OutputWriteError):
        imageio.atomic_write(tmp_path / "no_such_dir" / "x.png", lambda fh: fh.write(b"x"))


def test_write_image_atomic_and_unknown_extension(tmp_path, monkeypatch):
    picture = imageio.Picture(color=RGB)
    with pytest.raises(UsageError, match="unsupported output extension"):
        imageio.write_image(tmp_path / "out.xyz", picture)

    def broken(*args, **kwargs):
        raise OSError("encoder failed")

    monkeypatch.setattr(imageio, "save_image", broken)
    with pytest.raises(OutputWriteError):
        imageio.write_image(tmp_path / "out.png", picture)
    assert list(tmp_path.iterdir()) == []


def test_apply_orientation_matches_pil_for_all_values():
    im = Image.fromarray(RGB)
    for orientation in range(1, 9):
        exif = im.getexif()
        exif[0x0112] = orientation
        im.info["exif"] = exif.tobytes()
        expected = np.asarray(ImageOps.exif_transpose(im))
        assert np.array_equal(imageio.apply_orientation(RGB, orientation), expected), orientation


def test_tiff16_rejects_unsupported_layouts():
    tags = {tiff16.WIDTH: 2, tiff16.LENGTH: 2, tiff16.SAMPLES: 3, tiff16.COMPRESSION: 5,
            tiff16.STRIP_OFFSETS: (8,), tiff16.STRIP_COUNTS: (24,)}
    with pytest.raises(tiff16.TiffError, match="compression 5"):
        tiff16.decode(b"\x00" * 64, tags, "<")
