"""Hostile and broken input images: each is refused (or read) with a one-line message and the
documented exit code, inputs are left untouched, and no partial output or temporary file is left.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import hostile
import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from edge_runtime import InputImageError, MissingInputError, imageio
from edge_runtime.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else "-"
        for p in sorted(folder.rglob("*"))
    }


@contextmanager
def _no_hang(seconds: int = 30):
    """Fail instead of hanging (a FIFO opened for reading blocks until a writer comes)."""

    def boom(signum, frame):
        raise AssertionError(f"hung for {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def refused(capsys, tmp_path: Path, model: Path, name: str, data: bytes, code: int, message: str, *extra) -> str:
    """Run the CLI on one hostile file; check exit code, one-line message, unchanged input, no leftovers."""
    path = hostile.write(tmp_path / name, data)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    with _no_hang():
        assert main(["-m", str(model), str(path), *map(str, extra)]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("edge-restore: error: "), err
    assert message in err[-1], err[-1]
    assert _snapshot(tmp_path) == before  # input unchanged, nothing written, no temp files
    return err[-1]


# ---------------------------------------------------------------------- unreadable content


@pytest.mark.parametrize("ext", ["png", "jpg", "tif", "webp", "gif", "bmp"])
def test_zero_byte_file(tmp_path, int8_model, capsys, ext):
    refused(capsys, tmp_path, int8_model, f"empty.{ext}", b"", 65, "empty file (0 bytes)")


@pytest.mark.parametrize("ext", ["png", "jpg", "tif", "webp"])
def test_garbage_with_image_extension(tmp_path, int8_model, capsys, ext):
    garbage = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    refused(capsys, tmp_path, int8_model, f"garbage.{ext}", garbage, 65, "not a readable image")


@pytest.mark.parametrize(
    "fmt,ext,cut",
    [("JPEG", "jpg", 0.5), ("JPEG", "jpg", 0.1), ("PNG", "png", 0.5), ("PNG", "png", 0.05), ("TIFF", "tif", 0.5),
     ("WEBP", "webp", 0.5), ("GIF", "gif", 0.5)],
)
def test_truncated_files(tmp_path, int8_model, capsys, fmt, ext, cut):
    pixels = hostile.noise((64, 64, 3)) if fmt != "GIF" else hostile.noise((64, 64), 2)
    data = hostile.encode(pixels, fmt)
    line = refused(capsys, tmp_path, int8_model, f"cut.{ext}", data[: int(len(data) * cut)], 65, "cut." + ext)
    assert "cannot decode image" in line or "not a readable image" in line


def test_truncated_16bit_png_and_tiff(tmp_path, int8_model, capsys):
    from edge_runtime import png16, tiff16

    deep = np.random.default_rng(1).integers(0, 65536, (30, 30, 3), dtype=np.uint16)
    refused(capsys, tmp_path, int8_model, "cut16.png", png16.encode(deep)[:300], 65, "cannot decode image")
    data = tiff16.encode(deep)
    refused(capsys, tmp_path, int8_model, "cut16.tif", data[: len(data) // 2], 65, "cut16.tif")


# ------------------------------------------------------------------------ decompression bombs


@pytest.mark.parametrize("ext", sorted(hostile.BOMBS))
def test_decompression_bomb_refused_from_the_header(tmp_path, int8_model, capsys, ext, monkeypatch):
    data = hostile.BOMBS[ext]()
    assert len(data) < 2000  # a tiny file ...
    decoded = []
    monkeypatch.setattr(imageio, "_decode", lambda *a: decoded.append(a))
    line = refused(capsys, tmp_path, int8_model, f"bomb.{ext}", data, 65, "possible decompression bomb")
    assert "exceeds the limit of 50,000,000 pixels" in line and "--max-pixels" in line
    assert decoded == []  # ... refused before any pixel is decoded


def test_max_pixels_can_be_raised(tmp_path, int8_model, capsys):
    hostile.write(tmp_path / "a.png", hostile.encode(hostile.noise((64, 64, 3)), "PNG"))
    assert main(["-m", str(int8_model), str(tmp_path / "a.png"), "--max-pixels", "4000"]) == 65
    assert "4,096 pixels exceeds the limit of 4,000" in capsys.readouterr().err
    assert not (tmp_path / "a_restored.png").exists()
    assert main(["-m", str(int8_model), str(tmp_path / "a.png"), "--max-pixels", "4096", "-q"]) == 0
    assert Image.open(tmp_path / "a_restored.png").size == (64, 64)


def test_bomb_is_refused_with_little_memory(tmp_path):
    """In a fresh process: every bomb is refused with < 50 MB more peak RSS and Python allocations."""
    for ext, build in hostile.BOMBS.items():
        hostile.write(tmp_path / f"bomb.{ext}", build())
    code = f"""
import resource, sys, tracemalloc
from pathlib import Path
from edge_runtime import imageio, InputImageError
from PIL import Image
Image.init()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
for path in sorted(Path({str(tmp_path)!r}).glob("bomb.*")):
    try:
        imageio.read_image(path)
        sys.exit(f"{{path.name}} was decoded")
    except InputImageError as exc:
        assert "decompression bomb" in str(exc), exc
peak = tracemalloc.get_traced_memory()[1]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024, peak)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    rss_extra, traced_peak = map(int, out.stdout.split())
    assert rss_extra < 50 * 2**20 and traced_peak < 50 * 2**20, (rss_extra, traced_peak)


def test_zlib_bomb_in_16bit_png_icc_profile_is_bounded(tmp_path):
    from edge_runtime import png16

    deep = np.zeros((4, 4, 3), np.uint16)
    data = png16.encode(deep)
    bomb = zlib_bomb = __import__("zlib").compress(b"\x00" * (64 * 2**20), 9)  # 64 MB of zeros in ~64 KB
    iccp = hostile.png_chunk(b"iCCP", b"evil\x00\x00" + zlib_bomb)
    data = data[:33] + iccp + data[33:]
    pixels, info = png16.decode(data)
    assert pixels.shape == (4, 4, 3) and "icc_profile" not in info  # over the bound: dropped, not inflated
    assert len(bomb) < 100_000


# ---------------------------------------------------------------------------- 0 x N images


@pytest.mark.parametrize("ext", sorted(hostile.ZERO))
def test_zero_sized_images(tmp_path, int8_model, capsys, ext):
    line = refused(capsys, tmp_path, int8_model, f"zero.{ext}", hostile.ZERO[ext](), 65, f"zero.{ext}")
    assert "has no pixels" in line or "not a readable image" in line


def test_zero_sized_png_names_the_problem(tmp_path, int8_model, capsys):
    refused(capsys, tmp_path, int8_model, "zero.png", hostile.png_zero(0, 5), 65, "image has no pixels (0x5)")
    with pytest.raises(InputImageError, match="has no pixels"):
        imageio.check_pixels(Path("x.png"), (7, 0), None)


# ------------------------------------------------------------------------------ malformed EXIF


@pytest.mark.parametrize("case", sorted(hostile.MALFORMED_EXIF))
def test_malformed_exif_never_loses_the_photo(tmp_path, int8_model, capsys, case):
    src = hostile.write(tmp_path / "photo.jpg", hostile.jpeg_with_app1(hostile.MALFORMED_EXIF[case]))
    original = src.read_bytes()
    with _no_hang():
        assert main(["-m", str(int8_model), str(src), "-q"]) == 0
    out = tmp_path / "photo_restored.jpg"
    with Image.open(out) as im:
        assert im.format == "JPEG" and sorted(im.size) == [6, 8]
        assert 0x0112 not in im.getexif()  # never a stale orientation in the output
    assert src.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg", "photo_restored.jpg"]  # no temp files
    for line in capsys.readouterr().err.splitlines():
        assert line.startswith("edge-restore: warning: "), line  # warnings only, one line each


def test_invalid_orientation_is_ignored_with_a_warning(tmp_path, caplog):
    src = hostile.write(tmp_path / "o.jpg", hostile.jpeg_with_app1(hostile.MALFORMED_EXIF["orientation_is_text"]))
    with caplog.at_level(logging.WARNING, logger="edge_runtime"):
        picture = imageio.read_image(src)
    assert picture.color.shape == (6, 8, 3)  # used as stored
    assert "EXIF orientation 'abc' is invalid" in caplog.text


def test_exif_that_cannot_be_written_back_is_dropped(tmp_path, caplog, monkeypatch):
    exif = Image.Exif()
    exif[0x010F] = "Cam"
    hostile.write(tmp_path / "e.jpg", hostile.encode(hostile.noise((6, 8, 3)), "JPEG", exif=exif.tobytes()))

    def broken(self, *args, **kwargs):
        raise TypeError("cannot pack")

    monkeypatch.setattr(Image.Exif, "tobytes", broken)
    with caplog.at_level(logging.WARNING, logger="edge_runtime"):
        picture = imageio.read_image(tmp_path / "e.jpg")
    assert picture.exif is None and "EXIF is malformed (TypeError) and is not copied" in caplog.text


def test_unreadable_exif_block_is_skipped(tmp_path, caplog, monkeypatch):
    hostile.write(tmp_path / "e.jpg", hostile.encode(hostile.noise((6, 8, 3)), "JPEG"))

    def broken(self):
        raise SyntaxError("broken EXIF")

    monkeypatch.setattr(Image.Image, "getexif", broken)
    with caplog.at_level(logging.WARNING, logger="edge_runtime"):
        picture = imageio.read_image(tmp_path / "e.jpg")
    assert picture.color.shape == (6, 8, 3) and "EXIF is unreadable" in caplog.text


# --------------------------------------------------------------------- formats and extensions


def test_content_other_than_the_extension_says(tmp_path, int8_model, capsys):
    pixels = hostile.noise((20, 24, 3))
    src = hostile.write(tmp_path / "really_png.jpg", hostile.encode(pixels, "PNG"))
    original = src.read_bytes()
    assert main(["-m", str(int8_model), str(src), "-q"]) == 0
    assert src.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["really_png.jpg", "really_png_restored.jpg"]
    err = capsys.readouterr().err
    assert "edge-restore: warning: " in err and "the file is PNG, not what its .jpg extension says" in err
    with Image.open(tmp_path / "really_png_restored.jpg") as im:
        assert im.format == "JPEG" and im.size == (24, 20)  # written as the extension says


@pytest.mark.parametrize(
    "name,data,message",
    [
        ("drawing.eps", hostile.EPS, "PostScript/EPS files are not accepted"),
        ("sneaky.png", hostile.EPS, "PostScript/EPS files are not accepted"),
        ("doc.jpg", hostile.PDF, "PDF files are not accepted"),
    ],
)
def test_refused_formats_never_start_ghostscript(tmp_path, int8_model, capsys, monkeypatch, name, data, message):
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", str(tmp_path / "fake-gs"), raising=False)
    line = refused(capsys, tmp_path, int8_model, name, data, 65, message)
    assert "allowed: PNG, JPEG, TIFF, WEBP, BMP, GIF" in line
    assert calls == []


def test_eps_would_reach_ghostscript_without_the_allow_list(tmp_path):
    """Sanity check of the test above: plain Image.open() does identify the EPS file."""
    hostile.write(tmp_path / "d.eps", hostile.EPS)
    with Image.open(tmp_path / "d.eps") as im:
        assert im.format == "EPS"


def test_ghostscript_not_started_by_the_console_script(tmp_path, int8_model):
    """End to end in a subprocess with a fake `gs` first on PATH: it must never run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    marker = tmp_path / "gs-was-run"
    fake = bin_dir / "gs"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    fake.chmod(0o755)
    src = hostile.write(tmp_path / "in" / "photo.png", hostile.EPS)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-m", "edge_runtime.cli", "-m", str(int8_model), str(src)],
        capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
    )
    assert result.returncode == 65, result.stderr
    assert "PostScript/EPS files are not accepted" in result.stderr
    assert not marker.exists()
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == ["photo.png"]


@pytest.mark.parametrize("name,build", [("icon.png", hostile.ico), ("pixmap.png", hostile.ppm), ("pixmap.ppm", hostile.ppm)])
def test_formats_outside_the_allow_list_are_refused(tmp_path, int8_model, capsys, name, build):
    data = build()
    with Image.open(__import__("io").BytesIO(data)) as im:  # Pillow could decode it ...
        im.load()
    refused(capsys, tmp_path, int8_model, name, data, 65, "not a readable image")  # ... but it is not allowed


# --------------------------------------------------------------- FIFOs, devices, link loops


def test_special_files_in_a_batch_directory_are_skipped(tmp_path, int8_model, capsys):
    src = tmp_path / "batch"
    good = hostile.write(src / "good.png", hostile.encode(hostile.noise((20, 20, 3)), "PNG"))
    hostile.write(src / "sub" / "deep.png", hostile.encode(hostile.noise((20, 20, 3), 5), "PNG"))
    os.mkfifo(src / "fifo.png")
    os.mkfifo(src / "sub" / "fifo2.jpg")
    (src / "zero.png").symlink_to("/dev/zero")
    (src / "null.jpg").symlink_to("/dev/null")
    (src / "loop.png").symlink_to(src / "loop.png")
    (src / "a.png").symlink_to(src / "b.png")
    (src / "b.png").symlink_to(src / "a.png")
    (src / "dangling.png").symlink_to(src / "nowhere.png")
    (src / "sub" / "up").symlink_to(src)  # a directory loop for -r
    before = _snapshot(src)
    out = tmp_path / "out"
    with _no_hang():
        assert main(["-m", str(int8_model), str(src), "-r", "-o", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    for name, kind in [("fifo.png", "a FIFO"), ("fifo2.jpg", "a FIFO"), ("zero.png", "a device"), ("null.jpg", "a device"),
                       ("loop.png", "a symbolic link loop"), ("a.png", "a symbolic link loop"),
                       ("dangling.png", "a broken symbolic link")]:
        assert any(name in line and kind in line and line.startswith("edge-restore: warning: skipping")
                   for line in err.splitlines()), (name, err)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["good_restored.png", "sub/deep_restored.png"]
    assert _snapshot(src) == before and good.is_file()


@pytest.mark.parametrize("kind", ["fifo", "device", "loop", "directory"])
def test_special_file_given_explicitly_is_refused_without_blocking(tmp_path, int8_model, capsys, kind):
    path = tmp_path / "x.png"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "loop":
        path.symlink_to(path)
    else:
        path.mkdir()
    with _no_hang():
        code = main(["-m", str(int8_model), str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    if kind == "directory":  # a folder argument is a batch with no images in it
        assert code == 66 and "no images found" in err[-1]
        return
    assert code == 66, err
    assert err[-1].startswith("edge-restore: error: input is ")
    assert {"fifo": "not a regular file", "device": "not a regular file", "loop": "symbolic link loop"}[kind] in err[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_read_image_refuses_special_files_directly(tmp_path):
    os.mkfifo(tmp_path / "f.png")
    with _no_hang(), pytest.raises(MissingInputError, match="not a regular file"):
        imageio.read_image(tmp_path / "f.png")
    with pytest.raises(MissingInputError, match="input not found"):
        imageio.read_image(tmp_path / "none.png")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP", "BMP"])
def test_every_decodable_picture_can_be_encoded_in_every_output_format(fmt, tmp_path):
    """Found by the fuzzer: a gray+alpha PNG named .bmp decoded fine, then its output failed (mode LA).

    Every output is read back by the runtime; by Pillow too, except a 16-bit gray + alpha TIFF,
    which Pillow cannot open from any writer (it is kept at 16 bits since issue 18, item 17)."""
    for channels in (1, 3):
        for alpha in (False, True):
            for dtype in (np.uint8, np.uint16):
                color = np.full((5, 4, channels), 100, dtype)
                picture = imageio.Picture(color=color, alpha=np.full((5, 4), 200, dtype) if alpha else None)
                data = imageio.encode_image(picture, fmt)
                path = hostile.write(tmp_path / f"out.{fmt.lower()}", data)
                assert imageio.read_image(path).color.shape[:2] == (5, 4)
                if (fmt, channels, alpha, dtype) == ("TIFF", 1, True, np.uint16):
                    continue
                with Image.open(__import__("io").BytesIO(data)) as im:
                    assert im.size == (4, 5)


def test_decoder_exceptions_from_pillow_are_bad_images_in_strict_mode(tmp_path, monkeypatch):
    """Pillow raises TypeError/KeyError on some corrupt files: that is a bad image (65), even for the
    fuzzer; the same exception raised in edge-restore's own code is re-raised in strict mode."""
    monkeypatch.setattr(imageio, "STRICT_ERRORS", True)
    corpus = Path(__file__).resolve().parent / "fuzz" / "corpus" / "image"
    for name in ("f86335183d49349d.bin", "c98df6b6e66c64c2.bin"):  # TIFF 'Missing dimensions', decoder args
        ext, _, data = (corpus / name).read_bytes().partition(b"\0")
        path = hostile.write(tmp_path / f"x.{ext.decode()}", data)
        with pytest.raises(InputImageError, match="cannot decode image"):
            imageio.read_image(path)

    def own_bug(*args):
        raise KeyError("a bug in edge-restore")

    monkeypatch.setattr(imageio, "apply_orientation", own_bug)
    hostile.write(tmp_path / "ok.png", hostile.encode(hostile.noise((4, 4, 3)), "PNG"))
    with pytest.raises(KeyError):
        imageio.read_image(tmp_path / "ok.png")
    monkeypatch.setattr(imageio, "STRICT_ERRORS", False)
    with pytest.raises(InputImageError, match="unexpected KeyError"):
        imageio.read_image(tmp_path / "ok.png")
