"""Faults mid-batch: signals, a full disk, a read-only output folder, kill -9 during a write.

Nothing is lost: an output name holds a complete image or nothing, temporary files are removed
(by the failing run, or by the next run after a kill -9), the manifest is written, and a rerun
with --resume finishes the batch.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_runtime import OutputWriteError, cli, imageio
from edge_runtime.cli import main

ROOT = Path(__file__).resolve().parent.parent


def _images(folder: Path, n: int, shape=(64, 64, 3)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i:02d}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 256, shape, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def _complete(path: Path) -> bool:
    with Image.open(path) as im:
        im.load()
    return True


# A CLI run whose model sleeps 20 ms per tile, so that a signal lands mid-batch.
SLOW_CLI = """
import sys, time
from edge_runtime import backends
run = backends.TFLiteBackend.run
backends.TFLiteBackend.run = lambda self, tile: (time.sleep(0.02), run(self, tile))[1]
from edge_runtime.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _start_slow_cli(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SLOW_CLI, *map(str, args)], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(predicate, timeout=60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.005)


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_batch_writes_manifest_and_resume_finishes(tmp_path, int8_model, capsys, sig, code):
    inputs = _images(tmp_path / "in", 8)
    originals = {p: p.read_bytes() for p in inputs}
    out, manifest = tmp_path / "out", tmp_path / "run.json"
    proc = _start_slow_cli("-m", int8_model, tmp_path / "in", "-o", out, "--json", manifest, "-q")
    try:
        _wait_for(lambda: len(list(out.glob("*_restored.png"))) >= 2)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, stderr
    name = signal.Signals(sig).name
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"edge-restore: interrupted by {name}: ") and "--resume" in last, stderr

    data = json.loads(manifest.read_text())
    statuses = [f["status"] for f in data["files"]]
    done = statuses.count("ok")
    assert done >= 2 and statuses == ["ok"] * done + ["interrupted"] + ["pending"] * (7 - done), statuses
    assert data["interrupted_by"] == name and data["summary"]["interrupted"] == 1
    written = sorted(out.glob("*_restored.png"))
    assert len(written) == done and all(_complete(p) for p in written)  # the abandoned file left nothing
    assert _temps(tmp_path) == []

    capsys.readouterr()
    assert main(["-m", str(int8_model), str(tmp_path / "in"), "-o", str(out), "--json", str(manifest), "--resume", "-q"]) == 0
    assert capsys.readouterr().err.count("skipped, already done") == 0  # -q: quiet
    data = json.loads(manifest.read_text())
    assert data["summary"]["skipped"] == done and data["summary"]["ok"] == 8 - done and data["summary"]["failed"] == 0
    assert len(list(out.glob("*_restored.png"))) == 8 and _temps(tmp_path) == []
    assert all(p.read_bytes() == originals[p] for p in inputs)


def test_second_signal_stops_at_once_cleanly(tmp_path, int8_model):
    _images(tmp_path / "in", 6)
    out = tmp_path / "out"
    proc = _start_slow_cli("-m", int8_model, tmp_path / "in", "-o", out, "-q")
    try:
        _wait_for(lambda: len(list(out.glob("*_restored.png"))) >= 1)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert _temps(tmp_path) == [] and all(_complete(p) for p in out.glob("*_restored.png"))


def test_resume_reports_skipped_and_default_refuses(tmp_path, int8_model, capsys):
    _images(tmp_path, 2)
    assert main(["-m", str(int8_model), str(tmp_path / "img00.png"), "-q"]) == 0
    capsys.readouterr()
    batch = [str(tmp_path / "img00.png"), str(tmp_path / "img01.png")]
    assert main(["-m", str(int8_model), *batch, "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"edge-restore: skipped, already done: {tmp_path / 'img00.png'}" in err
    assert "1 of 2 restored, 0 failed, 1 skipped (already done)" in err
    assert main(["-m", str(int8_model), *batch]) == 73  # default: an existing output is refused
    assert "use --resume to skip finished files or --overwrite to replace it" in capsys.readouterr().err
    assert main(["-m", str(int8_model), *batch, "--resume", "--overwrite"]) == 1  # contradictory


# ------------------------------------------------------------------------------ full disk


class _FullDiskFile:
    """A file object that accepts `room` bytes, then fails like a full disk."""

    def __init__(self, raw, room: int) -> None:
        self.raw, self.room = raw, room

    def write(self, data) -> int:
        if len(data) > self.room:
            self.raw.write(bytes(data[: self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.raw.write(data)

    def __getattr__(self, name):
        return getattr(self.raw, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.raw.close()


def test_disk_full_while_writing_simulated(tmp_path, int8_model, capsys, monkeypatch):
    inputs = _images(tmp_path / "in", 2)
    originals = [p.read_bytes() for p in inputs]
    real_fdopen = os.fdopen
    monkeypatch.setattr(imageio.os, "fdopen", lambda fd, *a, **k: _FullDiskFile(real_fdopen(fd, *a, **k), 1000))
    out = tmp_path / "out"
    assert main(["-m", str(int8_model), *map(str, inputs), "-o", str(out), "-q"]) == 73
    err = capsys.readouterr().err
    assert err.count("No space left on device") >= 2 and "edge-restore: error: cannot write" in err
    assert list(out.iterdir()) == []  # no partial output under the final name, no temporary file
    assert [p.read_bytes() for p in inputs] == originals


@pytest.fixture
def mounted_tmpfs(tmp_path):
    """mount(8) a tmpfs with the given options under tmp_path (root only), unmounted afterwards."""
    mounts = []

    def mount(name: str, options: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        point = tmp_path / name
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_disk_full_on_a_real_small_filesystem(tmp_path, int8_model, capsys, mounted_tmpfs):
    small = _images(tmp_path / "in", 1, (16, 16, 3))[0]
    big = tmp_path / "in" / "big.png"
    Image.fromarray(np.random.default_rng(9).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(big)
    originals = {p: p.read_bytes() for p in (small, big)}
    disk = mounted_tmpfs("disk", "size=64k")
    manifest = tmp_path / "run.json"
    code = main(["-m", str(int8_model), str(small), str(big), "-o", str(disk), "--json", str(manifest), "-q"])
    assert code == 2  # the small image fits, the big one does not
    assert "No space left on device" in capsys.readouterr().err
    assert sorted(p.name for p in disk.iterdir()) == ["img00_restored.png"]  # no partial big output, no temp
    assert _complete(disk / "img00_restored.png")
    assert all(p.read_bytes() == data for p, data in originals.items())
    files = {Path(f["input"]).name: f for f in json.loads(manifest.read_text())["files"]}
    assert files["big.png"]["status"] == "error" and "No space left on device" in files["big.png"]["error"]


# -------------------------------------------------------------------------- read-only output


@pytest.fixture
def readonly_dir(tmp_path, mounted_tmpfs):
    if os.geteuid() == 0:  # root writes through chmod: use a read-only filesystem
        yield mounted_tmpfs("ro", "ro,size=64k")
        return
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    yield folder
    folder.chmod(0o755)


def test_read_only_output_folder_fails_before_the_model_loads(tmp_path, int8_model, capsys, monkeypatch, readonly_dir):
    inputs = _images(tmp_path / "in", 2)

    def heavy(*args, **kwargs):
        raise AssertionError("the model was loaded for a run that cannot write")

    monkeypatch.setattr(cli, "load_model", heavy)
    for target in (readonly_dir, readonly_dir / "new" / "sub"):
        assert main(["-m", str(int8_model), *map(str, inputs), "-o", str(target)]) == 73
        err = capsys.readouterr().err
        assert err.count("edge-restore: error: cannot write") == 2 and "is not writable (" in err
    assert main(["-m", str(int8_model), str(inputs[0]), "-o", str(readonly_dir / "one.png")]) == 73
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("edge-restore: error: cannot write")
    assert main(["-m", str(int8_model), str(inputs[0]), "--json", str(readonly_dir / "m.json")]) == 73
    assert "cannot write manifest" in capsys.readouterr().err
    assert list(readonly_dir.iterdir()) == [] and sorted(p.name for p in (tmp_path / "in").iterdir()) == ["img00.png", "img01.png"]


def test_atomic_write_errors_are_output_errors(tmp_path, monkeypatch):
    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(imageio.os, "fsync", full)
    with pytest.raises(OutputWriteError, match="No space left on device"):
        imageio.write_image(tmp_path / "x.png", imageio.Picture(color=np.zeros((4, 4, 3), np.uint8)))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- kill -9 during a write


# Writes two known pictures in turn to one name, forever; the file object writes in 32 KB
# pieces with a pause, so that a kill lands inside a write most of the time.
WRITER = """
import sys, time
import numpy as np
from edge_runtime import imageio
target = sys.argv[1]
pictures = [imageio.Picture(color=np.random.default_rng(s).integers(0, 256, (256, 256, 3), dtype=np.uint8)) for s in (1, 2)]
real = imageio.atomic_write
def slow_atomic_write(path, write):
    def slowly(fh):
        class Slow:
            def write(self, data):
                for i in range(0, len(data), 32768):
                    fh.write(data[i:i + 32768]); fh.flush(); time.sleep(0.003)
        write(Slow())
    real(path, slowly)
imageio.atomic_write = slow_atomic_write
print("ready", flush=True)
i = 0
while True:
    imageio.write_image(target, pictures[i % 2]); i += 1
"""


@pytest.mark.slow
def test_kill_9_during_writes_leaves_complete_image_or_nothing(tmp_path, int8_model):
    target = tmp_path / "out" / "photo_restored.png"
    target.parent.mkdir()
    expected = [np.random.default_rng(s).integers(0, 256, (256, 256, 3), dtype=np.uint8) for s in (1, 2)]
    rng = random.Random(1234)
    hit_mid_write = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        hit_mid_write += bool(_temps(target.parent))
        if target.exists():  # complete, and exactly one of the two pictures
            with Image.open(target) as im:
                pixels = np.asarray(im)
            assert any(np.array_equal(pixels, e) for e in expected)
    assert hit_mid_write >= 1  # the kills did land inside writes (temporary files left behind)

    # A CLI run that writes this output removes the killed run's temporaries.
    src = tmp_path / "photo.png"
    Image.fromarray(expected[0]).save(src)
    assert main(["-m", str(int8_model), str(src), "-o", str(target.parent), "--overwrite", "-q"]) == 0
    assert _temps(tmp_path) == [] and _complete(target)


@pytest.mark.slow
def test_kill_9_mid_batch_then_resume(tmp_path, int8_model):
    _images(tmp_path / "in", 6, (96, 96, 3))
    out = tmp_path / "out"
    rng = random.Random(99)
    for attempt in range(3):
        proc = _start_slow_cli("-m", int8_model, tmp_path / "in", "-o", out, "--resume", "-q")
        time.sleep(rng.uniform(0.3, 1.5))
        proc.kill()  # SIGKILL: no handler runs
        proc.communicate(timeout=30)
        assert all(_complete(p) for p in out.glob("*_restored.png"))
    assert main(["-m", str(int8_model), str(tmp_path / "in"), "-o", str(out), "--resume", "-q"]) == 0
    assert len(list(out.glob("*_restored.png"))) == 6 and all(_complete(p) for p in out.glob("*_restored.png"))
    assert _temps(tmp_path) == []


def test_exit_codes_document_matches_the_code():
    """docs/exit-codes.md lists exactly the codes the CLI uses, with errors.py's values."""
    import re

    from edge_runtime import errors

    text = (ROOT / "docs" / "exit-codes.md").read_text()
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", text, re.M)}
    constants = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    assert documented == constants | {128 + signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGPIPE}
    for exc, code in ((errors.UsageError, 1), (errors.InputImageError, 65), (errors.MissingInputError, 66),
                      (errors.OutputWriteError, 73), (errors.ModelError, 78), (errors.DeviceError, 78)):
        assert exc("x").exit_code == code and f"| {code} |" in text and exc.__name__ in text
    assert "docs/exit-codes.md" in cli.EPILOG
