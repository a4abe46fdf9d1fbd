"""edge_runtime.watch: the drop-oldest queue, camera frames, and the watch-folder service."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_runtime import FrameStream, load_model
from edge_runtime.watch import DropOldestQueue, FolderWatcher, FrameWorker, main

ROOT = Path(__file__).resolve().parent.parent


def _png(path: Path, shape=(24, 30, 3), seed=0) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


# --------------------------------------------------------------------------------------- queue


def test_drop_oldest_queue_keeps_the_newest_and_counts():
    q = DropOldestQueue(2)
    evicted = [q.put(i) for i in range(5)]
    assert evicted == [None, None, 0, 1, 2]
    assert q.dropped == 3 and q.qsize() == 2
    assert [q.get(timeout=0), q.get(timeout=0)] == [3, 4]
    with pytest.raises(ValueError):
        DropOldestQueue(0)


def test_drop_oldest_queue_never_grows_under_concurrent_producers():
    q = DropOldestQueue(3)
    sizes = []

    def produce(base):
        for i in range(500):
            q.put(base + i)
            sizes.append(q.qsize())

    threads = [threading.Thread(target=produce, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(sizes) <= 3
    assert q.dropped == 4 * 500 - 3


# ------------------------------------------------------------------------------------- frames


def test_frame_worker_restores_like_framestream(int8_model):
    model = load_model(int8_model, threads=1)
    frames = [np.random.default_rng(i).integers(0, 256, (20, 28, 3), dtype=np.uint8) for i in range(3)]
    results = {}
    worker = FrameWorker(model, 20, 28, maxsize=8, on_result=lambda tag, out: results.__setitem__(tag, out.copy()))
    for i, frame in enumerate(frames):
        assert worker.submit(frame, tag=i)
    stats = worker.close()
    assert stats.processed == 3 and stats.dropped == 0 and stats.failed == 0
    reference = FrameStream(load_model(int8_model, threads=1), 20, 28)
    for i, frame in enumerate(frames):
        assert np.array_equal(results[i], reference.process(frame))


def test_frame_worker_drops_oldest_frames_when_busy(int8_model):
    """A slow consumer: the queue holds at most maxsize frames, the rest are dropped and counted."""
    release = threading.Event()
    seen = []

    def slow(tag, out):
        seen.append(tag)
        release.wait(5)

    worker = FrameWorker(load_model(int8_model, threads=1), 16, 16, maxsize=2, on_result=slow)
    frame = np.zeros((16, 16, 3), np.uint8)
    worker.submit(frame, tag=0)
    deadline = time.time() + 5
    while not seen and time.time() < deadline:  # frame 0 is now in progress, blocked in the callback
        time.sleep(0.01)
    accepted = [worker.submit(frame, tag=i) for i in range(1, 11)]
    assert worker.queue.qsize() <= 2
    release.set()
    stats = worker.close()
    assert accepted[:2] == [True, True] and not any(accepted[2:])
    assert stats.submitted == 11 and stats.dropped == 8 and stats.processed == 3
    assert seen == [0, 9, 10]  # the newest frames survive


def test_frame_worker_copies_the_frame_and_survives_bad_frames(int8_model):
    outputs = []
    worker = FrameWorker(load_model(int8_model, threads=1), 8, 8, maxsize=4, on_result=lambda t, o: outputs.append(o.copy()))
    frame = np.full((8, 8, 3), 100, np.uint8)
    worker.submit(frame)
    frame[...] = 0  # the camera reuses its buffer: the queued copy is unaffected
    worker.submit(np.zeros((9, 9, 3), np.uint8))  # wrong size -> counted as failed, worker lives on
    worker.submit(frame)
    stats = worker.close()
    assert stats.processed == 2 and stats.failed == 1
    assert outputs[0].mean() > outputs[1].mean()
    with pytest.raises(RuntimeError):
        worker.submit(frame)


# ------------------------------------------------------------------------------ watch folder


def test_watch_once_restores_moves_and_skips(tmp_path, int8_model):
    src, out = tmp_path / "in", tmp_path / "out"
    pixels = {name: _png(src / name, seed=i) for i, name in enumerate(["a.png", "b.png", "c.png"])}
    (src / ".hidden.png").write_bytes(b"x")
    (src / "partial.png.part").write_bytes(b"x")
    (src / "notes.txt").write_text("not an image")
    (src / "sub").mkdir()
    _png(src / "sub" / "deep.png")
    assert main(["--model", str(int8_model), "--in", str(src), "--out", str(out), "--once", "--interval", "0.02", "-q"]) == 0
    model = load_model(int8_model)
    for name, px in pixels.items():
        restored = np.asarray(Image.open(out / name.replace(".png", "_restored.png")))
        assert np.array_equal(restored, model.restore(px))
        assert not (src / name).exists() and (src / "processed" / name).is_file()
    assert sorted(p.name for p in out.iterdir()) == ["a_restored.png", "b_restored.png", "c_restored.png"]
    assert (src / ".hidden.png").exists() and (src / "partial.png.part").exists() and (src / "notes.txt").exists()
    assert (src / "sub" / "deep.png").exists()


def test_file_is_taken_only_when_stable(tmp_path, int8_model):
    src = tmp_path / "in"
    src.mkdir()
    watcher = FolderWatcher(load_model(int8_model, threads=1), src, tmp_path / "out", stable_polls=2)
    data = (_png(tmp_path / "full.png"), (tmp_path / "full.png").read_bytes())[1]
    target = src / "frame.png"
    target.write_bytes(data[: len(data) // 2])  # the camera is still writing
    assert watcher.poll() == []
    with open(target, "ab") as fh:
        fh.write(data[len(data) // 2 :])
    assert watcher.poll() == []  # changed since the last poll: not yet
    assert watcher.poll() == [target]  # unchanged for two polls: complete
    assert watcher.poll() == []  # queued once only
    assert watcher.process_one() is True
    assert (tmp_path / "out" / "frame_restored.png").is_file()
    assert (src / "processed" / "frame.png").is_file()
    assert watcher.process_one() is None


def test_empty_file_is_not_taken(tmp_path, int8_model):
    src = tmp_path / "in"
    src.mkdir()
    (src / "empty.png").write_bytes(b"")
    watcher = FolderWatcher(load_model(int8_model, threads=1), src, tmp_path / "out")
    assert watcher.poll() == [] and watcher.poll() == [] and watcher.idle()


def test_full_queue_drops_the_oldest_file(tmp_path, int8_model):
    src = tmp_path / "in"
    for i, name in enumerate(["f1.png", "f2.png", "f3.png"]):
        _png(src / name, seed=i)
        t = 1_700_000_000 + i  # f1 oldest
        os.utime(src / name, (t, t))
    watcher = FolderWatcher(load_model(int8_model, threads=1), src, tmp_path / "out", maxsize=1, stable_polls=1)
    assert len(watcher.poll()) == 3  # no worker yet: the queue keeps only the newest
    assert watcher.stats.dropped == 2 and watcher.queue.qsize() == 1
    assert sorted(p.name for p in (src / "dropped").iterdir()) == ["f1.png", "f2.png"]
    assert watcher.process_one() is True
    assert (tmp_path / "out" / "f3_restored.png").is_file()
    watcher.poll()
    assert watcher.idle()


def test_bad_file_goes_to_failed_and_the_service_goes_on(tmp_path, int8_model, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    _png(src / "good.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code = main(["-m", str(int8_model), "--in", str(src), "--out", str(out), "--once", "--interval", "0.02",
                 "--format", "jpg", "--processed", str(tmp_path / "done")])
    assert code == 2  # --once with a failure
    assert (out / "good_restored.jpg").is_file() and (tmp_path / "done" / "good.png").is_file()
    assert (src / "failed" / "broken.png").is_file()
    err = capsys.readouterr().err
    assert "broken.png" in err and "1 processed" in err and "1 failed" in err


def test_processed_name_collision_keeps_both(tmp_path, int8_model):
    src = tmp_path / "in"
    watcher = FolderWatcher(load_model(int8_model, threads=1), src, tmp_path / "out", stable_polls=1)
    for seed in (0, 1):
        _png(src / "frame.png", seed=seed)
        assert watcher.poll() == [src / "frame.png"]
        assert watcher.process_one() is True
    assert sorted(p.name for p in (src / "processed").iterdir()) == ["frame-1.png", "frame.png"]


def test_run_stops_on_event(tmp_path, int8_model):
    src = tmp_path / "in"
    src.mkdir()
    watcher = FolderWatcher(load_model(int8_model, threads=1), src, tmp_path / "out", stable_polls=1)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, kwargs={"interval": 0.02, "stop": stop})
    thread.start()
    _png(src / "live.png")
    deadline = time.time() + 10
    while not (tmp_path / "out" / "live_restored.png").exists() and time.time() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert (tmp_path / "out" / "live_restored.png").is_file() and watcher.stats.processed == 1


def test_cli_errors(tmp_path, int8_model, capsys):
    assert main(["-m", str(tmp_path / "absent.tflite"), "--in", str(tmp_path), "--out", str(tmp_path / "o")]) == 78
    assert main(["-m", str(int8_model), "--in", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 66
    assert main(["-m", str(int8_model), "--in", str(tmp_path), "--out", str(tmp_path / "o"), "--queue", "0"]) == 1
    assert main(["-m", str(int8_model), "--in", str(tmp_path), "--out", str(tmp_path / "o"), "--format", "xyz"]) == 1
    assert main(["--in", str(tmp_path)]) == 1  # --model and --out missing (argparse usage error)
    err = capsys.readouterr().err
    assert "model not found" in err and "input folder not found" in err


def test_module_entry_point_and_sigterm(tmp_path, int8_model):
    """`python -m edge_runtime.watch` runs as a service and stops cleanly on SIGTERM (systemd stop)."""
    src, out = tmp_path / "in", tmp_path / "out"
    _png(src / "x.png")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_runtime.watch", "-m", str(int8_model), "--in", str(src), "--out", str(out),
         "--interval", "0.05", "--threads", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 30
        while not (out / "x_restored.png").exists() and time.time() < deadline:
            time.sleep(0.05)
        assert (out / "x_restored.png").is_file()
    finally:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "x_restored.png" in stdout and "1 processed" in stderr


def test_watch_imports_nothing_heavy():
    code = (
        "import sys, edge_runtime.watch;"
        "print(','.join(m for m in ('torch', 'tensorflow', 'cv2', 'ai_edge_litert', 'tflite_runtime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""
