"""Training-side faults: unsafe checkpoints, kill -9 then resume, corrupt images in the data folder."""

from __future__ import annotations

import logging
import pickle
import random
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from train.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from train.cli import build_parser, config_from_args  # noqa: E402
from train.data import list_images, load_images, validation_pairs  # noqa: E402
from train.degradations import DegradationConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- malicious pickle checkpoints


class _Payload:
    """Unpickling this object creates `marker` (a stand-in for arbitrary code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_payload_checkpoint_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model_config": {}, "model": {}, "step": 1, "extra": _Payload(marker)}, evil)
    legacy = tmp_path / "legacy.pt"  # a plain (non-zip) pickle file
    legacy.write_bytes(pickle.dumps({"model_config": {}, "model": _Payload(marker)}))
    for path in (evil, legacy):
        before = path.read_bytes()
        with pytest.raises(CheckpointError, match="refusing to load .*not a plain weights-only checkpoint") as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value)
        assert not marker.exists()  # the payload never ran ...
        assert path.read_bytes() == before
    pickle.loads(legacy.read_bytes()[:])  # ... and it would have: the test payload is real
    assert marker.exists()


def test_no_code_path_loads_checkpoints_unsafely():
    for folder in ("train", "export", "edge_runtime", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            assert "weights_only=False" not in text, path
            assert "pickle.load" not in text, path


# ------------------------------------------------------------------ kill -9, then resume

TRAIN_ARGS = ["--preset", "tiny", "--patch", "32", "--batch", "2", "--steps", "30", "--ckpt-every", "2",
              "--val-every", "1000", "--warmup", "2", "--threads", "1", "--seed", "3"]


def _state(path: Path) -> dict:
    return load_checkpoint(path)["model"]


@pytest.mark.slow
def test_kill_9_then_resume_loses_no_step_beyond_the_checkpoint(tmp_path, caplog):
    from train.train import train

    run = tmp_path / "killed"
    last = run / "last.pt"
    proc = subprocess.Popen([sys.executable, "-m", "train", *TRAIN_ARGS, "--out", str(run)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 120
        while not last.exists():
            assert proc.poll() is None and time.monotonic() < end, "training ended before its first checkpoint"
            time.sleep(0.005)
        time.sleep(random.Random(7).uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    saved = load_checkpoint(last)  # whatever moment the kill hit, last.pt is a complete checkpoint
    step = int(saved["step"])
    assert 2 <= step < 30 and step % 2 == 0
    # (a kill inside torch.save can leave a last.pt.*.tmp beside it; last.pt itself is always whole)

    threads = torch.get_num_threads()
    try:
        with caplog.at_level(logging.INFO, logger="train.train"):
            train(config_from_args(build_parser().parse_args([*TRAIN_ARGS, "--out", str(run)])))
        assert f"resumed from {last} at step {step}" in caplog.text
        assert int(load_checkpoint(last)["step"]) == 30
        reference = tmp_path / "uninterrupted"
        train(config_from_args(build_parser().parse_args([*TRAIN_ARGS, "--out", str(reference)])))
    finally:
        torch.set_num_threads(threads)
    resumed, straight = _state(last), _state(reference / "last.pt")
    # Batches are keyed on the step and the optimizer state is restored: the resumed run is the same run.
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


# ------------------------------------------------------------- corrupt training images


def _corrupt_folder(folder: Path) -> None:
    rng = np.random.default_rng(0)
    good = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(good).save(folder / "good.png")
    Image.fromarray(good).save(folder / "good2.jpg")
    (folder / "empty.png").write_bytes(b"")
    (folder / "garbage.jpg").write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    data = (folder / "good.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    data = (folder / "good2.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[:200])
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    (folder / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    import os

    os.mkfifo(folder / "fifo.png")  # never opened: list_images keeps regular files only
    (folder / "loop.png").symlink_to(folder / "loop.png")


def test_corrupt_training_images_are_reported_and_skipped(tmp_path, caplog):
    _corrupt_folder(tmp_path / "data")
    paths = list_images(tmp_path / "data")
    assert sorted(p.name for p in paths) == ["bomb.png", "empty.png", "garbage.jpg", "good.png", "good2.jpg",
                                             "truncated.jpg", "truncated.png"]
    with caplog.at_level(logging.WARNING, logger="train.data"):
        images = load_images(paths)
    assert len(images) == 2 and all(im.shape == (48, 48, 3) for im in images)
    for name in ("bomb.png", "empty.png", "garbage.jpg", "truncated.jpg", "truncated.png"):
        assert f"skipping unreadable training image {tmp_path / 'data' / name}" in caplog.text
    assert "skipped 5 of 7 training images as unreadable" in caplog.text
    pairs = validation_pairs(paths, DegradationConfig(), 4)
    assert sorted(name for name, _, _ in pairs) == ["good.png", "good2.jpg"]


def test_training_runs_past_corrupt_images_and_refuses_an_all_corrupt_folder(tmp_path, caplog):
    from train.train import train

    _corrupt_folder(tmp_path / "data")
    args = ["--preset", "tiny", "--patch", "32", "--batch", "2", "--steps", "2", "--val-every", "1000",
            "--warmup", "1", "--threads", "1", "--data", str(tmp_path / "data")]
    threads = torch.get_num_threads()
    try:
        with caplog.at_level(logging.WARNING):
            best = train(config_from_args(build_parser().parse_args([*args, "--out", str(tmp_path / "run")])))
        assert best.is_file() and int(load_checkpoint(tmp_path / "run" / "last.pt")["step"]) == 2
        assert "skipping unreadable training image" in caplog.text
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "x.png").write_bytes(b"nope")
        (bad / "y.jpg").write_bytes(b"")
        from train.cli import main as train_main

        assert train_main([*args[:-1], str(bad), "--out", str(tmp_path / "run2")]) == 1
    finally:
        torch.set_num_threads(threads)
