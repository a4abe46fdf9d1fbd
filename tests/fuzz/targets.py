"""Fuzz targets for edge-restore, shared by the hypothesis tests, the corpus replay and scripts/fuzz.py.

Two targets, each a function of one input that may raise only the documented error types:

image   bytes of a (mutated) PNG/JPEG/TIFF/WebP/GIF/BMP file, written under an image extension
        -> imageio.read_image (STRICT_ERRORS on: no catch-all hides an unexpected exception)
        -> tile -> run with the tiny real int8 model (tests/data/int8.tflite) -> encode_image.
        Allowed: InputImageError, MissingInputError from reading. Once an image decodes, the
        rest of the pipeline must not raise at all.
model   bytes of a (mutated) .tflite -> tflite_validate.validate_tflite + tflite_metadata.read_contract;
        a (mutated) .npy blur kernel -> classic.load_kernel (KernelError, MissingInputError allowed);
        a (mutated) .onnx -> onnx_validate.external_locations + unsafe_location; or a mutated
        contract JSON -> ModelContract.from_json.
        Allowed: FlatbufferError, ContractError, OnnxFormatError. (These pure-python validators
        are what stands between a model file and the interpreter; see backends.open_backend.)
interpreter  bytes of a (mutated) .tflite -> backends.open_backend (validation, then the real
        TFLite interpreter for what passes) -> one tile through backend.run. Allowed: ModelError.
        A model the validator lets through must not crash the interpreter (scripts/fuzz.py runs
        each target in a worker process, so a segfault is caught and its input saved).

Inputs are produced by hypothesis strategies that pick a seed file and apply a short program of
byte mutations (set, flip, insert, delete, splice, interesting integers, truncation), with
format-aware steps (PNG CRC repair, mutation inside the inflated PNG image data) so mutated
files get past checksums into the decoders.
"""

from __future__ import annotations

import atexit
import io
import json
import os
import shutil
import struct
import tempfile
import zlib
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from PIL import Image, ImageCms

from edge_runtime import imageio, png16, tiff16
from edge_runtime.contract import ContractError, ModelContract
from edge_runtime.errors import InputImageError, MissingInputError
from edge_runtime.classic import load_kernel
from edge_runtime.errors import KernelError
from edge_runtime.onnx_validate import OnnxFormatError, check_operators, external_locations, unsafe_location
from edge_runtime.tflite_metadata import FlatbufferError, read_contract
from edge_runtime.tflite_validate import validate_tflite

TESTS = Path(__file__).resolve().parent.parent
DATA = TESTS / "data"
CORPUS = Path(__file__).resolve().parent / "corpus"
#: Pixel cap while fuzzing: keeps one execution cheap (a real run uses 50 MP).
FUZZ_MAX_PIXELS = 1 << 16
IMAGE_ALLOWED = (InputImageError, MissingInputError)
MODEL_ALLOWED = (FlatbufferError, ContractError, OnnxFormatError)
EXTENSIONS = ("png", "jpg", "tif", "webp", "gif", "bmp")

#: Executions of each target in this process (counted inside the target: real runs only).
EXECUTIONS = {"image": 0, "model": 0, "interpreter": 0}
#: How the executions ended ('refused', 'restored', 'accepted'), per target.
OUTCOMES: dict[str, dict[str, int]] = {"image": {}, "model": {}, "interpreter": {}}
#: The input of the execution in progress, for saving a finding.
LAST_INPUT: dict[str, bytes] = {}
#: A file descriptor the input of each execution is written to before it runs (set by
#: scripts/fuzz.py), so that the input of an execution that crashes the process is known.
RECORD_FD: int | None = None


def _record(target: str, blob: bytes) -> None:
    EXECUTIONS[target] += 1
    LAST_INPUT[target] = blob
    if RECORD_FD is not None:
        os.pwrite(RECORD_FD, blob, 0)
        os.ftruncate(RECORD_FD, len(blob))

# ------------------------------------------------------------------------------------ seeds


def _save(pixels: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **kw)
    return buf.getvalue()


@lru_cache(maxsize=1)
def image_seeds() -> tuple[tuple[str, bytes], ...]:
    """(extension, bytes) of small files covering every decoder path imageio has."""
    rng = np.random.default_rng(2024)
    rgb = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    gray = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    deep = rng.integers(0, 65536, (5, 4, 3), dtype=np.uint16)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "Cam"
    exif[0x0112] = 6
    seeds = [
        ("png", _save(rgb, "PNG")),
        ("png", _save(rgba, "PNG")),
        ("png", _save(gray, "PNG", dpi=(300, 300))),
        ("png", _save(rgb, "PNG", exif=exif.tobytes())),
        ("png", png16.encode(deep, icc_profile=icc[:200])),
        ("png", png16.encode(rng.integers(0, 65536, (4, 3, 2), dtype=np.uint16))),
        ("png", _save(np.asarray(Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)), "PNG")),
        ("jpg", _save(rgb, "JPEG", quality=90, exif=exif.tobytes())),
        ("jpg", _save(rgb, "JPEG", progressive=True, quality=50)),
        ("jpg", _save(gray, "JPEG")),
        ("tif", _save(rgb, "TIFF")),
        ("tif", tiff16.encode(deep)),
        ("tif", _save(deep[..., 0], "TIFF")),
        ("webp", _save(rgb, "WEBP", lossless=True)),
        ("webp", _save(rgba, "WEBP", quality=50)),
        ("bmp", _save(rgb, "BMP")),
    ]
    frames = [Image.fromarray(gray), Image.fromarray(255 - gray)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    seeds.append(("gif", buf.getvalue()))
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, format="JPEG")
    seeds.append(("jpg", buf.getvalue()))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", save_all=True, append_images=[Image.fromarray(rgb[::-1].copy())])
    seeds.append(("png", buf.getvalue()))  # APNG
    # Hostile seeds from the hostile-input tests.
    import hostile

    seeds += [("png", hostile.png_bomb(300, 300)), ("jpg", hostile.jpeg_bomb(300, 300)), ("tif", hostile.tiff_bomb(300, 300)),
              ("gif", hostile.gif_bomb(300, 300)), ("png", hostile.EPS)]
    seeds += [("jpg", hostile.jpeg_with_app1(payload)) for payload in hostile.MALFORMED_EXIF.values()]
    # Issue 18: interlaced 16-bit PNG (png16's Adam7 path), JPEGs cut and closed with EOI (the
    # truncation probe), a tRNS colour key.
    seeds += [("png", _interlaced_png16(deep)), ("png", _interlaced_png16(rng.integers(0, 65536, (6, 5, 4), dtype=np.uint16)))]
    for progressive in (False, True):
        jpeg = _save(rgb, "JPEG", quality=90, progressive=progressive)
        seeds.append(("jpg", jpeg[: len(jpeg) * 2 // 3] + b"\xff\xd9"))
    seeds.append(("png", _save(rgb, "PNG", transparency=tuple(int(v) for v in rgb[0, 0]))))
    return tuple(seeds)


def _interlaced_png16(pixels: np.ndarray) -> bytes:
    """An Adam7 16-bit RGB / RGBA PNG, rows filtered with Sub."""
    h, w, c = pixels.shape
    raw = bytearray()
    for x0, y0, dx, dy in png16._ADAM7:
        for row in pixels[y0::dy, x0::dx]:
            if row.size:
                data = row.astype(">u2").view(np.uint8).reshape(-1)
                raw += b"\x01" + np.concatenate([data[: 2 * c], data[2 * c :] - data[: -2 * c]]).tobytes()
    header = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 1)
    return png16.SIGNATURE + png16._chunk(b"IHDR", header) + png16._chunk(b"IDAT", zlib.compress(bytes(raw))) + \
        png16._chunk(b"IEND", b"")


@lru_cache(maxsize=1)
def model_seeds() -> tuple[tuple[str, bytes], ...]:
    seeds = []
    for path in sorted(DATA.glob("*.tflite")) + sorted((DATA / "hostile").glob("*.tflite")):
        seeds.append(("tflite", path.read_bytes()))
    for path in sorted(DATA.glob("*.onnx")) + sorted((DATA / "hostile").glob("*.onnx")):
        seeds.append(("onnx", path.read_bytes()))
    for array, version in ((np.ones((5, 5)), None), (np.arange(12, dtype=np.uint8).reshape(3, 4), None),
                           (np.asfortranarray(np.eye(3, dtype=np.float32)), None), (np.ones((1, 7, 1)), (2, 0))):
        buf = io.BytesIO()  # blur kernels (--kernel .npy, issue 18): header parsed before the data
        if version is None:
            np.save(buf, array)
        else:
            np.lib.format.write_array(buf, array, version=version)
        seeds.append(("npy", buf.getvalue()))
    return tuple(seeds)


@lru_cache(maxsize=1)
def contract_seed() -> dict:
    return json.loads(read_contract((DATA / "exported_int8.tflite").read_bytes()).to_json())


# ---------------------------------------------------------------------------- mutations

INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def _fix_png_crcs(data: bytearray) -> bytearray:
    if not data.startswith(png16.SIGNATURE):
        return data
    pos = 8
    while pos + 12 <= len(data):
        length = struct.unpack_from(">I", data, pos)[0]
        end = pos + 8 + length
        if end + 4 > len(data):
            break
        struct.pack_into(">I", data, end, zlib.crc32(bytes(data[pos + 4 : end])) & 0xFFFFFFFF)
        pos = end + 4
    return data


def _mutate_png_pixels(data: bytearray, draw) -> bytearray:
    """Mutate the inflated IDAT stream (filter bytes, pixel data, length) and deflate it again."""
    if not data.startswith(png16.SIGNATURE):
        return data
    try:
        chunks, pos = [], 8
        while pos + 12 <= len(data):
            length = struct.unpack_from(">I", data, pos)[0]
            chunks.append((bytes(data[pos + 4 : pos + 8]), bytes(data[pos + 8 : pos + 8 + length])))
            pos += 12 + length
        raw = bytearray(zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT")))
    except (zlib.error, struct.error):
        return data
    for _ in range(draw(st.integers(1, 4))):
        if not raw:
            break
        i = draw(st.integers(0, len(raw) - 1))
        kind = draw(st.integers(0, 2))
        if kind == 0:
            raw[i] = draw(st.integers(0, 255))
        elif kind == 1:
            del raw[i:]
        else:
            raw[i:i] = draw(st.binary(max_size=16))
    out = bytearray(png16.SIGNATURE)
    idat_done = False
    for kind, body in chunks:
        if kind == b"IDAT":
            if idat_done:
                continue
            body, idat_done = zlib.compress(bytes(raw)), True
        out += struct.pack(">I", len(body)) + kind + body + b"\0\0\0\0"
    return _fix_png_crcs(out)


@st.composite
def mutated_bytes(draw, seed: bytes, max_ops: int = 6) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, max_ops))):
        if not data:
            data += draw(st.binary(min_size=1, max_size=32))
            continue
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.integers(0, 9))
        if op == 0:
            data[i] = draw(st.integers(0, 255))
        elif op == 1:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == 2:
            del data[i : i + draw(st.integers(1, 64))]
        elif op == 3:
            data[i:i] = draw(st.binary(min_size=1, max_size=64))
        elif op in (4, 5):
            value = draw(st.sampled_from(INTERESTING))
            fmt = draw(st.sampled_from(("<H", ">H", "<I", ">I", "B")))
            if i + struct.calcsize(fmt) <= len(data):
                struct.pack_into(fmt, data, i, value & {"B": 0xFF, "<H": 0xFFFF, ">H": 0xFFFF}.get(fmt, 0xFFFFFFFF))
        elif op == 6:
            del data[i:]
        elif op == 7:
            j = draw(st.integers(0, len(data) - 1))
            data[i:i] = data[j : j + draw(st.integers(1, 128))]
        elif op == 8:
            data = _mutate_png_pixels(data, draw)
        else:
            data[i : i + 4] = bytes(4) if draw(st.booleans()) else b"\xff\xff\xff\xff"
    if data.startswith(png16.SIGNATURE) and draw(st.booleans()):
        data = _fix_png_crcs(data)
    return bytes(data)


@st.composite
def image_inputs(draw) -> tuple[str, bytes]:
    ext, seed = draw(st.sampled_from(image_seeds()))
    if draw(st.integers(0, 15)) == 0:
        ext = draw(st.sampled_from(EXTENSIONS))  # content and extension disagree
    return ext, draw(mutated_bytes(seed))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)


@st.composite
def contract_json(draw) -> bytes:
    data = dict(contract_seed())
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(sorted(data) + ["extra"]))
        if draw(st.integers(0, 5)) == 0:
            data.pop(key, None)
        else:
            data[key] = draw(_JSON)
    text = json.dumps(data, allow_nan=True)
    if draw(st.integers(0, 15)) == 0:  # deep nesting (a RecursionError before issue 18)
        depth = draw(st.integers(10, 5000))
        return ("[" * depth + "]" * depth).encode()
    if draw(st.integers(0, 7)) == 0:
        return draw(mutated_bytes(text.encode(), 3))
    return text.encode()


@st.composite
def tflite_inputs(draw) -> tuple[str, bytes]:
    seed = draw(st.sampled_from([data for kind, data in model_seeds() if kind == "tflite"]))
    return "tflite", draw(mutated_bytes(seed, 4))


@st.composite
def model_inputs(draw) -> tuple[str, bytes]:
    if draw(st.integers(0, 7)) == 0:
        return "contract", draw(contract_json())
    kind, seed = draw(st.sampled_from(model_seeds()))
    return kind, draw(mutated_bytes(seed, 8))


# ------------------------------------------------------------------------------ targets

# Where the inputs are written: scripts/fuzz.py passes a folder it removes itself (even after a
# worker crash); otherwise a temporary folder removed at exit.
if os.environ.get("EDGE_RESTORE_FUZZ_DIR"):
    _FOLDER = Path(os.environ["EDGE_RESTORE_FUZZ_DIR"])
else:
    _FOLDER = Path(tempfile.mkdtemp(prefix="edge-restore-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    atexit.register(shutil.rmtree, _FOLDER, True)


@lru_cache(maxsize=1)
def _model():
    from edge_runtime import load_model

    return load_model(DATA / "int8.tflite", threads=1)


def _outcome(target: str, result: str) -> str:
    OUTCOMES[target][result] = OUTCOMES[target].get(result, 0) + 1
    return result


def run_image(ext: str, data: bytes) -> str:
    """Decode -> tile -> run -> encode one file. Returns 'refused' or 'restored'; raises anything else."""
    _record("image", ext.encode() + b"\0" + data)
    path = _FOLDER / f"input.{ext}"
    path.write_bytes(data)
    strict = imageio.STRICT_ERRORS
    imageio.STRICT_ERRORS = True
    try:
        picture = imageio.read_image(path, max_pixels=FUZZ_MAX_PIXELS)
    except IMAGE_ALLOWED:
        return _outcome("image", "refused")
    finally:
        imageio.STRICT_ERRORS = strict
    model = _model()
    out = np.empty_like(picture.color)
    model.tiler(picture.height, picture.width, picture.color.shape[2]).run(picture.color, model.run_tile, out=out)
    restored = replace(picture, color=out)
    fmt = imageio.FORMATS.get(f".{ext}", "PNG")
    for name in {fmt, "PNG"}:
        imageio.encode_image(restored, name)
    return _outcome("image", "restored")


def run_model(kind: str, data: bytes) -> str:
    """One model-file validation. Returns 'refused' or 'accepted'; raises anything undocumented."""
    _record("model", kind.encode() + b"\0" + data)
    try:
        if kind == "tflite":
            validate_tflite(data)
            read_contract(data)
        elif kind == "onnx":
            for _, location in external_locations(data):
                unsafe_location(location, _FOLDER)
            check_operators(data)
        elif kind == "npy":
            path = _FOLDER / "kernel.npy"
            path.write_bytes(data)
            load_kernel(path)
        else:
            ModelContract.from_json(data)
    except (*MODEL_ALLOWED, KernelError, MissingInputError):
        return _outcome("model", f"{kind} refused")
    return _outcome("model", f"{kind} accepted")


def run_interpreter(kind: str, data: bytes) -> str:
    """Validate a .tflite and, if it passes, run one tile through the real interpreter."""
    from edge_runtime.backends import open_backend
    from edge_runtime.errors import ModelError

    _record("interpreter", kind.encode() + b"\0" + data)
    path = _FOLDER / "model.tflite"
    path.write_bytes(data)
    try:
        backend = open_backend(path, threads=1)
        tile = np.full((1, backend.tile_size, backend.tile_size, backend.channels), 0.5, np.float32)
        backend.run(tile)
    except ModelError as exc:
        stage = "interpreter" if "interpreter" in str(exc) else "validator"
        return _outcome("interpreter", f"refused by the {stage}")
    return _outcome("interpreter", "ran")


RUNNERS = {"image": run_image, "model": run_model, "interpreter": run_interpreter}


def run_saved(target: str, blob: bytes) -> str:
    """Replay a corpus file ('<kind or ext>\\0<bytes>')."""
    kind, _, data = blob.partition(b"\0")
    return RUNNERS[target](kind.decode(), data)
