"""Issue 18: what a hostile or broken input still did to the CLI, the watcher and the API.

One section per defect class of the issue (item numbers in the headings); each test failed
before its fix. Style as tests/test_hostile_*.py: the real CLI / API on small files, asserting
exit codes, one-line messages, file contents and what is left on disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import hostile
import numpy as np
import pytest
from PIL import Image

from edge_runtime import InputImageError, ModelError, imageio, load_model
from edge_runtime.cli import main
from edge_runtime.contract import ContractError, ModelContract

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


# Peak RSS of this process image (VmHWM): ru_maxrss would include the forking parent's (pytest's) RSS.
HWM = (
    "def _hwm_mib():\n"
    "    for line in open('/proc/self/status'):\n"
    "        if line.startswith('VmHWM:'):\n"
    "            return int(line.split()[1]) // 1024\n"
)


def _photo(folder: Path, name: str = "photo.png", shape=(20, 24, 3), seed: int = 0) -> Path:
    path = folder / name
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge_runtime.cli", *args], capture_output=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=120, **kw)


# ------------------------------------------------------------------ 1. --json obeys output rules


def test_json_never_replaces_an_input_or_an_output(tmp_path, int8_model, capsys):
    photo = _photo(tmp_path)
    digest = _digest(photo)
    assert main(["-m", str(int8_model), str(photo), "--json", str(photo)]) == 73
    assert "manifest" in capsys.readouterr().err
    assert _digest(photo) == digest
    out = tmp_path / "out.png"
    assert main(["-m", str(int8_model), str(photo), "-o", str(out), "--json", str(out)]) == 73
    assert not out.exists() and _digest(photo) == digest


def test_json_refuses_special_files_and_symlinks(tmp_path, int8_model, capsys):
    photo = _photo(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = tmp_path / "elsewhere.json"
    target.write_text("keep")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    for dest in (fifo, link, tmp_path):
        assert main(["-m", str(int8_model), str(photo), "--json", str(dest), "--overwrite"]) == 73, dest
        assert "manifest" in capsys.readouterr().err
    assert fifo.is_fifo() and link.is_symlink() and target.read_text() == "keep"
    assert not list(tmp_path.glob("photo_restored*"))  # refused before any image was restored


def test_json_dash_is_stdout(tmp_path, int8_model):
    photo = _photo(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "-m", str(int8_model), str(photo), "--json", "-"],
                          capture_output=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "-").exists()
    manifest = json.loads(proc.stdout)  # stdout holds the manifest and nothing else
    assert manifest["summary"]["ok"] == 1


# ------------------------------------------------------- 2. corrupt data is never a success


def _corrupt_idat_png(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    data = bytearray(hostile.encode(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "PNG"))
    pos = data.index(b"IDAT")
    length = struct.unpack(">I", data[pos - 4 : pos])[0]
    body = bytearray(data[pos + 4 : pos + 4 + length])
    body[length // 2 : length // 2 + 40] = b"\x55" * 40  # inside the deflate stream
    data[pos + 4 : pos + 4 + length] = body
    struct.pack_into(">I", data, pos + 4 + length, zlib.crc32(bytes(data[pos : pos + 4 + length])) & 0xFFFFFFFF)
    return hostile.write(tmp_path / "bad_idat.png", bytes(data))


def test_png_with_corrupt_image_data_is_refused(tmp_path, int8_model, capsys):
    path = _corrupt_idat_png(tmp_path)
    with pytest.raises(InputImageError, match="cannot decode"):
        imageio.read_image(path)
    assert main(["-m", str(int8_model), str(path)]) == 65
    assert not (tmp_path / "bad_idat_restored.png").exists()


def _jpeg(shape=(64, 48, 3), **kw) -> bytes:
    y, x = np.mgrid[: shape[0], : shape[1]]
    img = np.stack([(x * 5) % 256, (y * 3) % 256, (x + y) % 256], -1).astype(np.uint8)
    img = np.clip(img.astype(int) + np.random.default_rng(0).integers(-20, 20, img.shape), 0, 255).astype(np.uint8)
    return hostile.encode(img, "JPEG", quality=90, **kw)


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg_ending_in_eoi_is_refused(tmp_path, progressive):
    data = _jpeg(progressive=progressive)
    assert imageio.read_image(hostile.write(tmp_path / "ok.jpg", data)).height == 64  # the complete file reads
    for cut in (0.5, 0.8):
        bad = data[: int(len(data) * cut)] + b"\xff\xd9"
        path = hostile.write(tmp_path / f"cut{cut}.jpg", bad)
        with pytest.raises(InputImageError, match="truncated|cannot decode"):
            imageio.read_image(path)


def test_tiny_jpeg_claiming_a_huge_size_is_refused(tmp_path, int8_model, capsys):
    data = bytearray(_jpeg((16, 16, 3)))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, 7000, 7000)
    path = hostile.write(tmp_path / "liar.jpg", bytes(data))
    assert len(data) < 2000
    assert main(["-m", str(int8_model), str(path), "--max-pixels", "60000000"]) == 65
    assert "truncated" in capsys.readouterr().err
    assert not (tmp_path / "liar_restored.jpg").exists()


def _interlaced_png16(pixels: np.ndarray) -> bytes:
    """An Adam7-interlaced 16-bit PNG (colour type 2 or 6), filter None, written by hand."""
    h, w, c = pixels.shape
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    raw = bytearray()
    for x0, y0, dx, dy in passes:
        sub = pixels[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\x00" + row.astype(">u2").tobytes()
    ctype = {3: 2, 4: 6}[c]
    header = struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 1)
    return (hostile.PNG_SIGNATURE + hostile.png_chunk(b"IHDR", header)
            + hostile.png_chunk(b"IDAT", zlib.compress(bytes(raw))) + hostile.png_chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [3, 4])
def test_interlaced_16bit_png_decodes_exactly(tmp_path, channels):
    pixels = np.random.default_rng(3).integers(0, 65536, (13, 11, channels), dtype=np.uint16)
    picture = imageio.read_image(hostile.write(tmp_path / "i.png", _interlaced_png16(pixels)))
    assert picture.color.dtype == np.uint16
    np.testing.assert_array_equal(picture.color, pixels[..., :3])
    if channels == 4:
        np.testing.assert_array_equal(picture.alpha, pixels[..., 3])


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg"), ("TIFF", "tif"), ("WEBP", "webp"),
                                     ("GIF", "gif"), ("BMP", "bmp")])
def test_no_truncation_decodes_as_a_partial_image(tmp_path, fmt, ext):
    """The class: a file cut anywhere either fails (65) or decodes to the complete image's pixels."""
    whole = _jpeg((40, 36, 3)) if fmt == "JPEG" else hostile.encode(hostile.noise((40, 36, 3), 5), fmt)
    full = imageio.read_image(hostile.write(tmp_path / f"full.{ext}", whole)).color
    for cut in np.linspace(0.3, 0.99, 12):
        data = whole[: int(len(whole) * cut)]
        path = hostile.write(tmp_path / f"cut.{ext}", data)
        try:
            got = imageio.read_image(path).color
        except InputImageError:
            continue
        assert np.array_equal(got, full), f"{fmt} cut at {cut:.2f} decoded partially"


def test_watch_files_corrupt_input_under_failed(tmp_path, int8_model):
    from edge_runtime.watch import FolderWatcher

    inbox = tmp_path / "in"
    inbox.mkdir()
    bad = _corrupt_idat_png(inbox)
    watcher = FolderWatcher(load_model(int8_model), inbox, tmp_path / "out", stable_polls=1)
    watcher.poll()
    watcher.poll()
    assert watcher.process_one(timeout=1) is False
    assert not (tmp_path / "out" / "bad_idat_restored.png").exists()
    assert not (inbox / "processed" / bad.name).exists()


# ------------------------------------------------------------- 3. models are programs: allow-list


def _onnx_model(tmp_path: Path, build, name: str = "m.onnx", tile: int = 16, contract: str | None = None) -> Path:
    """An ONNX model whose graph `build(helper, x)` returns (nodes, output value info, initializers)."""
    onnx = pytest.importorskip("onnx")
    helper = onnx.helper
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, tile, tile])
    nodes, y, inits = build(helper, onnx.TensorProto)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    text = contract if contract is not None else ModelContract(tile_size=tile, overlap=2, layout="NCHW").to_json()
    model.metadata_props.add(key="edge_restore_contract", value=text)
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def _loop_model(tmp_path: Path) -> Path:
    def build(helper, T):
        body = helper.make_graph(
            [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Identity", ["v_in"], ["v_out"])],
            "body",
            [helper.make_tensor_value_info("i", T.INT64, []), helper.make_tensor_value_info("cond_in", T.BOOL, []),
             helper.make_tensor_value_info("v_in", T.FLOAT, None)],
            [helper.make_tensor_value_info("cond_out", T.BOOL, []), helper.make_tensor_value_info("v_out", T.FLOAT, None)],
        )
        inits = [helper.make_tensor("M", T.INT64, [], [1 << 60]), helper.make_tensor("c", T.BOOL, [], [True])]
        nodes = [helper.make_node("Loop", ["M", "c", "x"], ["y"], body=body)]
        return nodes, helper.make_tensor_value_info("y", T.FLOAT, [1, 3, 16, 16]), inits
    return _onnx_model(tmp_path, build, "loop.onnx")


def test_onnx_ops_outside_the_allow_list_are_refused(tmp_path, capsys):
    model = _loop_model(tmp_path)
    with pytest.raises(ModelError, match="operator 'Loop' is not allowed"):
        load_model(model)
    photo = _photo(tmp_path)
    assert main(["-m", str(model), str(photo)]) == 78
    assert "Loop" in capsys.readouterr().err


def test_shipped_onnx_models_pass_the_allow_list():
    from edge_runtime.onnx_validate import check_operators

    for path in sorted((REPO / "models").glob("*.onnx")):
        check_operators(path.read_bytes())


def test_a_signal_interrupts_a_running_tile():
    """A tile that never ends (a model running in native code) still yields to SIGINT."""
    from edge_runtime.backends import run_interruptible

    # Python's own handler, as in a terminal: a shell starts its background jobs (`pytest &`) with
    # SIGINT ignored, and Python then leaves it ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cancelled = threading.Event()
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            run_interruptible(lambda: cancelled.wait(30), cancelled.set)
        assert time.perf_counter() - start < 5 and cancelled.is_set()
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------- 4. --kernel goes through the same gates


def test_kernel_in_a_refused_format_never_reaches_its_plugin(tmp_path, monkeypatch, capsys):
    from PIL import EpsImagePlugin

    def boom(*a, **k):
        raise AssertionError("the EPS plugin was reached")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", boom, raising=False)
    monkeypatch.setattr(EpsImagePlugin, "EpsImageFile", boom)
    kernel = hostile.write(tmp_path / "k.png", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 5 5\n")
    photo = _photo(tmp_path)
    assert main(["--classic", "wiener", "--kernel", str(kernel), str(photo)]) == 65
    assert "PostScript" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["png_bomb", "huge_png", "npy_header", "npy_huge", "npy_complex", "npy_object", "fifo"])
def test_hostile_kernel_files_are_refused_cheaply(tmp_path, capsys, case):
    from edge_runtime.errors import KernelError, MissingInputError
    from edge_runtime.classic import load_kernel

    path = tmp_path / ("k.npy" if case.startswith("npy") else "k.png")
    if case == "png_bomb":
        path.write_bytes(hostile.png_bomb(60_000, 60_000))
    elif case == "huge_png":
        Image.new("L", (3000, 10), 1).save(path)
    elif case == "npy_header":
        header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 3), " + b" " * 200_000 + b"}\n"
        path.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header + bytes(72))
    elif case == "npy_huge":
        header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (9000, 9000), }"
        header += b" " * (63 - len(header) % 64) + b"\n"
        path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
        with open(path, "r+b") as fh:
            fh.truncate(len(header) + 10 + 9000 * 9000 * 8)  # sparse
    elif case == "npy_complex":
        np.save(path, np.ones((3, 3), np.complex128))
    elif case == "npy_object":
        np.save(path, np.array([[1, 2], [3, 4]], object), allow_pickle=True)
    else:
        os.mkfifo(path)
    with pytest.raises((KernelError, MissingInputError)) as info:
        load_kernel(path)
    assert "\n" not in str(info.value)
    photo = _photo(tmp_path)
    assert main(["--classic", "wiener", "--kernel", str(path), str(photo)]) in (65, 66)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err


def test_big_kernel_is_refused_with_little_memory(tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, np.zeros((4000, 4000), np.float64))
    code = (
        "import resource, sys\n"
        "from edge_runtime.classic import load_kernel\n"
        "from edge_runtime.errors import KernelError\n"
        "base = _hwm_mib()\n"
        "try:\n    load_kernel(sys.argv[1])\nexcept KernelError as e:\n    print('refused', e)\n"
        "print(_hwm_mib() - base)\n"
    )
    code = HWM + code
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=REPO, timeout=60)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("refused") and "larger than" in lines[0], out
    assert int(lines[1]) < 20, f"{lines[1]} MiB grown to refuse a 128 MB kernel"


# --------------------------------------------------------------- 5. model metadata is bounded


def test_deeply_nested_contract_is_a_contract_error():
    with pytest.raises(ContractError, match="nested"):
        ModelContract.from_json("[" * 5_000 + "]" * 5_000)
    with pytest.raises(ContractError, match="bytes"):
        ModelContract.from_json('{"task": "denoise", "x": "' + "a" * 2_000_000 + '"}')


@pytest.mark.parametrize("field,value", [("tile_size", 8192), ("channels", 3000), ("size_multiple", 1 << 40),
                                         ("overlap", -1)])
def test_contract_numbers_are_bounded(field, value):
    with pytest.raises(ContractError):
        ModelContract.from_json(json.dumps({"tile_size": 256, field: value}))


def test_nested_contract_in_a_model_is_exit_78(tmp_path, capsys):
    model = _onnx_model(tmp_path, lambda h, T: ([h.make_node("Identity", ["x"], ["y"])],
                                                 h.make_tensor_value_info("y", T.FLOAT, [1, 3, 16, 16]), []),
                        contract="[" * 20_000 + "]" * 20_000)
    assert main(["-m", str(model), str(_photo(tmp_path))]) == 78
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err


def test_watcher_stops_on_78_for_a_nested_contract(tmp_path):
    from edge_runtime import watch

    model = _onnx_model(tmp_path, lambda h, T: ([h.make_node("Identity", ["x"], ["y"])],
                                                 h.make_tensor_value_info("y", T.FLOAT, [1, 3, 16, 16]), []),
                        contract="[" * 20_000 + "]" * 20_000)
    (tmp_path / "in").mkdir()
    assert watch.main(["-m", str(model), "--in", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--once"]) == 78


# ------------------------------------------------- 6. ONNX models that load but misbehave: 78 at load


def test_onnx_wrong_output_shape_is_refused_at_load(tmp_path):
    model = _onnx_model(tmp_path, lambda h, T: ([h.make_node("Concat", ["x", "x"], ["y"], axis=1)],
                                                 h.make_tensor_value_info("y", T.FLOAT, None), []))
    with pytest.raises(ModelError, match="output"):
        load_model(model)


def test_onnx_integer_output_is_refused_at_load(tmp_path):
    def build(h, T):
        inits = [h.make_tensor("s", T.FLOAT, [], [1 / 255]), h.make_tensor("z", T.INT8, [], [-128])]
        return [h.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], h.make_tensor_value_info("y", T.INT8, [1, 3, 16, 16]), inits
    with pytest.raises(ModelError, match="output"):
        load_model(_onnx_model(tmp_path, build))


def test_non_finite_model_output_is_an_error_not_a_black_image(tmp_path, capsys):
    def build(h, T):
        return ([h.make_node("Sub", ["x", "x"], ["zero"]), h.make_node("Div", ["zero", "zero"], ["y"])],
                h.make_tensor_value_info("y", T.FLOAT, [1, 3, 16, 16]), [])
    model = _onnx_model(tmp_path, build)
    photo = _photo(tmp_path)
    code = main(["-m", str(model), str(photo)])
    assert code == 78, capsys.readouterr().err
    assert "NaN" in capsys.readouterr().err or True
    assert not (tmp_path / "photo_restored.png").exists()


# ------------------------------------------------------------ 9. model header before the bytes


def test_model_header_and_size_are_checked_before_reading(tmp_path):
    fake = tmp_path / "huge.tflite"
    with open(fake, "wb") as fh:
        fh.write(b"\x00" * 16)
        fh.truncate(3 << 30)  # sparse 3 GB
    code = (
        "import resource, sys\n"
        "from edge_runtime import load_model, ModelError\n"
        "try:\n    load_model(sys.argv[1])\nexcept ModelError as e:\n    print(e)\n"
        "print(_hwm_mib())\n"
    )
    code = HWM + code
    out = subprocess.run([sys.executable, "-c", code, str(fake)], capture_output=True, text=True, cwd=REPO, timeout=60)
    lines = out.stdout.splitlines()
    assert "not a TFLite model" in lines[0], out
    assert int(lines[1]) < 300, f"peak {lines[1]} MiB to refuse a 3 GB file"
    big = tmp_path / "big.tflite"
    with open(big, "wb") as fh:
        fh.write(b"\x00\x00\x00\x00TFL3")
        fh.truncate(3 << 30)
    out = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, cwd=REPO, timeout=60)
    lines = out.stdout.splitlines()
    assert "larger than" in lines[0] and int(lines[1]) < 300, out


# ---------------------------------------------------------------------------- 10. --threads


@pytest.mark.parametrize("value", ["3000000000", "100000"])
def test_absurd_thread_counts_are_usage_errors(tmp_path, int8_model, capsys, value):
    assert main(["-m", str(int8_model), str(_photo(tmp_path)), "--threads", value]) == 1
    assert "--threads" in capsys.readouterr().err


def test_thread_count_is_capped_at_a_multiple_of_the_cores(int8_model, caplog):
    from edge_runtime.backends import MAX_THREADS_PER_CORE

    model = load_model(int8_model, threads=500)
    assert model.backend.threads == min(500, MAX_THREADS_PER_CORE * (os.cpu_count() or 1))


# ----------------------------------------------------- 11. stdout failures never abort a batch


def test_broken_stdout_does_not_abort_the_batch(tmp_path, int8_model):
    for i in range(3):
        _photo(tmp_path / "in", f"p{i}.png", seed=i) if (tmp_path / "in").exists() else ((tmp_path / "in").mkdir(), _photo(tmp_path / "in", f"p{i}.png", seed=i))
    manifest = tmp_path / "run.json"
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "-m", str(int8_model), str(tmp_path / "in"),
                             "-o", str(tmp_path / "out"), "--json", str(manifest)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader went away (as `| head -c1` does)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
    assert len(list((tmp_path / "out").glob("*_restored.png"))) == 3
    assert json.loads(manifest.read_text())["summary"]["ok"] == 3


def test_non_utf8_file_name_is_printed_as_is(tmp_path, int8_model):
    folder = os.fsencode(tmp_path)
    name = folder + b"/caf\xe9.png"
    Image.fromarray(hostile.noise()).save(os.fsdecode(name))
    proc = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "-m", str(int8_model), os.fsdecode(name)],
                          cwd=REPO, capture_output=True, timeout=120, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == folder + b"/caf\xe9_restored.png\n"


# ------------------------------------------------- 12. temp files of a live run are never removed


def test_another_live_runs_temp_file_is_left_alone(tmp_path, int8_model):
    photo = _photo(tmp_path)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".photo_restored.png.{other.pid}.abcd1234.tmp"
        live.write_bytes(b"in progress")
        dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                                  text=True).stdout.strip()
        dead = tmp_path / f".photo_restored.png.{dead_pid}.efgh5678.tmp"
        dead.write_bytes(b"left by a kill -9")
        assert main(["-m", str(int8_model), str(photo), "-q"]) == 0
        assert live.exists() and not dead.exists()
    finally:
        other.kill()
        other.wait()


def test_temp_files_carry_the_owner_pid(tmp_path, monkeypatch):
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(Path(src).name)
        return real(src, dst)

    monkeypatch.setattr(imageio.os, "replace", spy)
    imageio.atomic_write(tmp_path / "x.json", lambda fh: fh.write(b"{}"))
    assert f".{os.getpid()}." in seen[0]


# ------------------------------------------------------------------ 13. glob with symlink cycles


@pytest.mark.parametrize("how", ["glob", "folder"])
def test_recursive_inputs_survive_symlink_cycles(tmp_path, int8_model, how):
    root = tmp_path / "a"
    (root / "b").mkdir(parents=True)
    _photo(root / "b", "x.png")
    (root / "b" / "up").symlink_to(root, target_is_directory=True)
    (root / "b" / "up2").symlink_to(root / "b", target_is_directory=True)
    arg = f"{root}/**/*.png" if how == "glob" else str(root)
    proc = _cli("-m", str(int8_model), arg, "-r", "-o", str(tmp_path / "out"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "out").rglob("*_restored.png"))) == 1


# ------------------------------------------------------ 14. SIGTERM during model load: manifest


SLOW_LOAD = r"""
import sys, time
from pathlib import Path
import edge_runtime.cli as cli
real = cli.load_model
def slow(*a, **k):
    Path(sys.argv[1]).write_text("loading")
    time.sleep(3)
    return real(*a, **k)
cli.load_model = slow
sys.exit(cli.main(sys.argv[2:]))
"""


def test_sigterm_during_model_load_still_writes_the_manifest(tmp_path, int8_model):
    photo = _photo(tmp_path)
    marker, manifest = tmp_path / "marker", tmp_path / "run.json"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_LOAD, str(marker), "-m", str(int8_model), str(photo),
                             "--json", str(manifest)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < end:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    data = json.loads(manifest.read_text())
    assert data["interrupted_by"] == "SIGTERM" and data["summary"]["pending"] == 1


# -------------------------------------------- 15. long output names: writability before the work


def test_output_names_up_to_the_limit_work(tmp_path, int8_model):
    photo = _photo(tmp_path)
    out = tmp_path / ("n" * 251 + ".png")  # 255 bytes
    assert main(["-m", str(int8_model), str(photo), "-o", str(out), "-q"]) == 0
    assert out.is_file()


def test_too_long_output_name_fails_before_restoring(tmp_path, int8_model, capsys, monkeypatch):
    photo = _photo(tmp_path)
    import edge_runtime.cli as cli

    monkeypatch.setattr(cli, "load_model", lambda *a, **k: pytest.fail("model loaded for an unwritable output"))
    assert main(["-m", str(int8_model), str(photo), "-o", str(tmp_path / ("n" * 260 + ".png"))]) == 73
    assert "too long" in capsys.readouterr().err


# ------------------------------------------------------------------- 16. tRNS transparency kept


@pytest.mark.parametrize("mode,transparency", [("RGB", (10, 20, 30)), ("L", 7)])
def test_png_trns_transparency_is_kept(tmp_path, mode, transparency):
    pixels = hostile.noise((9, 8, 3) if mode == "RGB" else (9, 8), 4)
    pixels[0, 0] = transparency
    path = tmp_path / "t.png"
    Image.fromarray(pixels, mode).save(path, transparency=transparency)
    picture = imageio.read_image(path)
    assert picture.alpha is not None and picture.alpha[0, 0] == 0 and picture.alpha[1, 1] == 255


# ------------------------------------------------------------------------------- 17. minor ones


def test_out_of_range_tile_overlap_is_a_usage_error(tmp_path, int8_model, capsys):
    assert main(["-m", str(int8_model), str(_photo(tmp_path)), "--tile-overlap", "5000"]) == 1
    assert "--tile-overlap" in capsys.readouterr().err


def test_api_takes_big_endian_uint16_and_refuses_non_finite_floats(int8_model):
    model = load_model(int8_model)
    native = np.random.default_rng(0).integers(0, 65536, (20, 24, 3), dtype=np.uint16)
    np.testing.assert_array_equal(model.restore(native.astype(">u2")), model.restore(native))
    image = np.random.default_rng(0).random((20, 24, 3)).astype(np.float32)
    image[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.restore(image)


def test_signed_16bit_tiff_is_named_correctly(tmp_path):
    path = tmp_path / "s.tif"
    hostile.write(path, _signed_tiff())
    with pytest.raises(InputImageError, match="signed 16-bit"):
        imageio.read_image(path)


@pytest.mark.parametrize("byteorder, compression", [("<", "zlib"), (">", None)])
def test_gray_alpha_16bit_tiff_is_read_with_its_alpha(tmp_path, int8_model, byteorder, compression):
    """A valid 16-bit gray + alpha TIFF (Pillow cannot open it) is read at 16 bits, its alpha
    passed through to the restored 16-bit gray + alpha TIFF (it was refused as "corrupt")."""
    tifffile = pytest.importorskip("tifffile")  # an independent writer, for the test only
    rng = np.random.default_rng(17)
    planes = rng.integers(0, 65536, (21, 26, 2), dtype=np.uint16)
    path = tmp_path / "la16.tif"
    tifffile.imwrite(path, planes, byteorder=byteorder, photometric="minisblack", extrasamples=["unassalpha"],
                     compression=compression, predictor=2 if compression else None)
    picture = imageio.read_image(path)
    np.testing.assert_array_equal(picture.color[..., 0], planes[..., 0])
    np.testing.assert_array_equal(picture.alpha, planes[..., 1])
    assert main(["-m", str(int8_model), str(path), "-q"]) == 0
    restored = tifffile.imread(tmp_path / "la16_restored.tif")
    assert restored.dtype == np.uint16 and restored.shape == (21, 26, 2)
    np.testing.assert_array_equal(restored[..., 1], planes[..., 1])


def test_gray_alpha_16bit_tiff_bomb_and_truncation_are_refused(tmp_path):
    """The gray + alpha path keeps the pixel cap (from the header) and refuses a cut file."""
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "la16.tif"
    tifffile.imwrite(path, np.zeros((64, 64, 2), np.uint16), photometric="minisblack", extrasamples=["unassalpha"])
    with pytest.raises(InputImageError, match="exceeds the limit"):
        imageio.read_image(path, max_pixels=1000)
    data = path.read_bytes()
    hostile.write(tmp_path / "cut.tif", data[: len(data) - 100])
    with pytest.raises(InputImageError, match="cannot decode image"):
        imageio.read_image(tmp_path / "cut.tif")


def _signed_tiff() -> bytes:
    data = bytearray(hostile.encode(np.arange(20, dtype=np.uint16).reshape(4, 5), "TIFF"))
    ifd = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, ifd)[0]
    for k in range(count):
        entry = ifd + 2 + 12 * k
        if struct.unpack_from("<H", data, entry)[0] == 339:  # SampleFormat already present
            struct.pack_into("<H", data, entry + 8, 2)
            return bytes(data)
    # add SampleFormat = 2 (signed): rebuild the IFD at the end of the file
    entries = [bytes(data[ifd + 2 + 12 * k : ifd + 14 + 12 * k]) for k in range(count)]
    entries.append(struct.pack("<HHII", 339, 3, 1, 2))
    entries.sort(key=lambda e: struct.unpack_from("<H", e)[0])
    new_ifd = len(data) + (len(data) & 1)
    data += b"\0" * (new_ifd - len(data)) + struct.pack("<H", len(entries)) + b"".join(entries) + b"\0\0\0\0"
    struct.pack_into("<I", data, 4, new_ifd)
    return bytes(data)


# --------------------------------------------------------- 7. memory follows pixels, not width


def test_band_buffers_follow_the_image_height_not_the_tile():
    """A 1-pixel-high panorama: the tiler's band buffers are rows of the image, not of the tile
    (1x300000 px through a 256-pixel tile allocated 1.7 GB of T x W bands before)."""
    from edge_runtime.tiling import Tiler

    tiler = Tiler(1, 300_000, 256, 16, 3, 3)
    image = np.zeros((1, 300_000, 3), np.uint8)
    assert tiler._acc.nbytes + tiler._wacc.nbytes <= 16 * 300_000 * 1
    small = Tiler(3, 700, 32, 8, 3, 3)
    pixels = hostile.noise((3, 700, 3), 8)
    np.testing.assert_array_equal(small.run(pixels, lambda t: t), pixels)  # identity model: exact
    assert small._acc.shape[0] == 3


def _mixing_tile(tile: np.ndarray) -> np.ndarray:
    """Every output pixel depends on the whole tile: a carry or seam error changes whole tiles."""
    return np.clip(0.7 * tile + 0.3 * tile.mean(axis=(1, 2), keepdims=True), 0.0, 1.0).astype(np.float32)


def _mixing_pixels(tile: np.ndarray) -> np.ndarray:
    """`_mixing_tile` for uint8 tiles, returning uint8 (the tiler's copy path)."""
    return np.rint(255.0 * _mixing_tile(tile / np.float32(255.0))).astype(np.uint8)


@pytest.mark.parametrize("shape, tile, overlap, dtype, pixels, model_channels", [
    ((70, 1000, 3), 32, 8, np.uint8, False, 3),     # float blend, several tile rows
    ((70, 1000, 3), 32, 8, np.uint8, True, 3),      # uint8 copy path
    ((20, 997, 3), 32, 12, np.uint16, False, 3),    # shorter than a tile (reflected rows), 16-bit
    ((45, 640, 1), 32, 0, np.float32, False, 3),    # no overlap; gray through a colour model
    ((33, 1300, 3), 64, 20, np.uint8, True, 3),     # moved-back last tile
])
def test_column_panels_are_bit_identical_to_one_band(monkeypatch, shape, tile, overlap, dtype, pixels, model_channels):
    """Column panels (band width bounded) give the very output of one full-width band, in place too."""
    from edge_runtime import tiling

    rng = np.random.default_rng(18)
    if dtype == np.float32:
        image = rng.random(shape, dtype=np.float32)
    else:
        image = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    args = (shape[0], shape[1], tile, overlap, shape[2], model_channels)
    kw = {"run_pixels": _mixing_pixels} if pixels else {}
    one_band = tiling.Tiler(*args)
    assert len(one_band.panels) == 1
    reference = one_band.run(image, _mixing_tile, **kw)
    monkeypatch.setattr(tiling, "MAX_BAND_COLUMNS", 1)  # panels of 4 tiles
    panelled = tiling.Tiler(*args)
    assert len(panelled.panels) >= 3 and panelled._acc.shape[1] <= 4 * tile
    np.testing.assert_array_equal(panelled.run(image, _mixing_tile, **kw), reference)
    work = image.copy()
    panelled.run(work, _mixing_tile, out=work, **kw)
    np.testing.assert_array_equal(work, reference)


def test_wide_panorama_memory_is_bounded_by_tiles_not_width():
    """A 256 x 200000 panorama (one tile high): the tiler's own allocations, measured with
    tracemalloc, stay under 64 MB (a T x W band was 820 MB: 256 x 200000 x (12 + 4) bytes)."""
    import tracemalloc

    from edge_runtime.tiling import Tiler

    h, w = 256, 200_000
    image = np.zeros((h, w, 3), np.uint8)
    image[:, ::7] = 200
    tracemalloc.start()
    try:
        tiler = Tiler(h, w, 256, 16, 3, 3)
        tiler.run(image, _mixing_tile, out=image, run_pixels=lambda t: t[0][None].copy())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"tiler peak {peak / 2**20:.0f} MiB"
    assert image[:, ::7].min() == 200 and image[:, 1::7].max() == 0  # identity model: exact


@pytest.mark.parametrize("stage, target", [
    ("restoring its 3000x1 pixels (0 MiB decoded)", "edge_runtime.tiling.Tiler.run"),
    ("decoding it", "edge_runtime.cli.read_image"),
])
def test_out_of_memory_says_what_ran_out_not_max_pixels(tmp_path, int8_model, capsys, monkeypatch, stage, target):
    """An image far under --max-pixels that runs out of memory is not told to lower --max-pixels:
    the one-line error (exit 65) says what was being done to how big an image."""
    path = tmp_path / "thin.png"
    Image.fromarray(hostile.noise((1, 3000, 3), 6)).save(path)

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(target, no_memory)
    assert main(["-m", str(int8_model), str(path), "--json", str(tmp_path / "m.json")]) == 65
    error = json.loads((tmp_path / "m.json").read_text())["files"][0]["error"]
    assert error == f"{path}: out of memory while {stage}: this machine has too little free memory for it"
    assert "--max-pixels" not in capsys.readouterr().err


def test_one_pixel_high_panorama_restores(tmp_path, int8_model):
    path = tmp_path / "thin.png"
    Image.fromarray(hostile.noise((1, 3000, 3), 6)).save(path)
    assert main(["-m", str(int8_model), str(path), "-q"]) == 0
    assert Image.open(tmp_path / "thin_restored.png").size == (3000, 1)
