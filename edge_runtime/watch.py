"""`edge-restore-watch`: restore images as they land in a folder, or frames from a camera, in bounded memory.

Watch-folder mode (an inspection camera or a PLC writes image files into a folder):

    python -m edge_runtime.watch --model models/denoise_int8.tflite --in /srv/camera/in --out /srv/camera/out

Every --interval seconds the input folder is listed with os.scandir (not recursively; hidden files,
temporary names such as *.tmp / *.part and earlier *_restored outputs are ignored). A file is taken
once it is *complete*: the same size and modification time in --stable-polls consecutive polls
(default 2), so a file still being copied is never read half-written. Complete files go through a
bounded queue (--queue, default 8) to one inference worker. When the camera is faster than the
model and the queue is full, the *oldest* waiting file is dropped (moved to the dropped folder and
counted) rather than letting a backlog grow without limit: an inspection line wants the latest
frames. Outputs are written atomically (temporary file + rename, edge_runtime.imageio) as
OUT/<name>_restored.<ext>; the input is then moved to --processed (default IN/processed), or to
IN/failed if it could not be restored. SIGTERM / SIGINT stop it cleanly after the current file.

Camera-frame mode (frames as numpy arrays in your own program):

    from edge_runtime import load_model
    from edge_runtime.watch import FrameWorker

    worker = FrameWorker(load_model("denoise"), 480, 640, maxsize=2, on_result=show)
    for frame in camera:                 # (480, 640, 3) uint8
        worker.submit(frame)             # never blocks; drops the oldest queued frame when full
    worker.close()
    print(worker.stats)                  # submitted / processed / dropped / failed

Both modes use DropOldestQueue: a queue.Queue(maxsize) whose put never blocks and never grows past
maxsize; it evicts the oldest item and counts it.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import errors
from .api import FrameStream, RestorationModel, load_model
from .deblur import refuse_deblur_prior
from .backends import DEVICES
from .batch_files import COMPARE_SUFFIX, OUTPUT_SUFFIX, Job
from .cli import _threads, out_of_memory, restore_file
from .errors import EdgeRestoreError
from .imageio import DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, FORMATS, INPUT_EXTENSIONS

PROG = "edge-restore-watch"
log = logging.getLogger("edge_runtime")

#: Name endings of files that are still being written by common tools (never picked up).
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart", "~")


# ------------------------------------------------------------------------------------ the queue


class DropOldestQueue:
    """A bounded FIFO whose put() never blocks: when full, the oldest item is evicted and counted.

    Memory stays bounded by `maxsize` items however fast the producer is. `put()` returns the
    evicted item (or None) so the caller can clean up after it; `dropped` counts evictions.
    """

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize = int(maxsize)
        self._queue: queue.Queue = queue.Queue(maxsize=self.maxsize)
        self._put_lock = threading.Lock()
        self.dropped = 0

    def put(self, item: Any) -> Any:
        evicted = None
        with self._put_lock:  # one producer at a time: evict-then-put cannot interleave
            while True:
                try:
                    self._queue.put_nowait(item)
                    return evicted
                except queue.Full:
                    try:
                        old = self._queue.get_nowait()
                    except queue.Empty:  # a consumer just made room
                        continue
                    self._queue.task_done()
                    self.dropped += 1
                    if evicted is None:
                        evicted = old
                    else:  # cannot happen with one producer lock, but never lose track of an item
                        log.warning("dropped an extra queued item")

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item; raises queue.Empty after `timeout` seconds."""
        return self._queue.get(timeout=timeout)

    def task_done(self) -> None:
        self._queue.task_done()

    def qsize(self) -> int:
        return self._queue.qsize()

    def empty(self) -> bool:
        return self._queue.empty()


# ---------------------------------------------------------------------------- camera-frame mode


@dataclass
class Stats:
    submitted: int = 0
    processed: int = 0
    dropped: int = 0
    failed: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        per = f", {self.seconds / self.processed * 1000:.1f} ms each" if self.processed else ""
        return (f"{self.submitted} submitted, {self.processed} processed{per}, {self.dropped} dropped, "
                f"{self.failed} failed")


class FrameWorker:
    """Restore same-sized frames on a worker thread, through a bounded drop-oldest queue.

    submit(frame) copies the frame into the queue and returns at once; when `maxsize` frames are
    already waiting, the oldest is discarded (stats.dropped). on_result(tag, restored) runs on the
    worker thread with FrameStream's reused output buffer: copy it if you keep it. At most
    maxsize + 1 frames (queued + in progress) are held at any time.
    """

    def __init__(
        self,
        model: RestorationModel,
        height: int,
        width: int,
        channels: int = 3,
        dtype=np.uint8,
        maxsize: int = 2,
        on_result: Callable[[Any, np.ndarray], None] | None = None,
    ) -> None:
        self.stream = FrameStream(model, height, width, channels, dtype)
        self.queue = DropOldestQueue(maxsize)
        self.on_result = on_result
        self.stats = Stats()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="edge-restore-frames", daemon=True)
        self._thread.start()

    def submit(self, frame: np.ndarray, tag: Any = None) -> bool:
        """Queue a copy of `frame`; False if an older frame had to be dropped to make room."""
        if self._stop.is_set():
            raise RuntimeError("FrameWorker is closed")
        arr = np.array(frame, dtype=self.stream.dtype, copy=True)
        with self._lock:
            self.stats.submitted += 1
        evicted = self.queue.put((tag, arr))
        with self._lock:
            self.stats.dropped = self.queue.dropped
        return evicted is None

    def _run(self) -> None:
        while not self._stop.is_set() or not self.queue.empty():
            try:
                tag, frame = self.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                start = time.perf_counter()
                out = self.stream.process(frame)
                took = time.perf_counter() - start
                if self.on_result is not None:
                    self.on_result(tag, out)
                with self._lock:
                    self.stats.processed += 1
                    self.stats.seconds += took
            except Exception as exc:  # a bad frame or callback must not kill the camera loop
                log.warning("frame %r failed: %s", tag, exc)
                with self._lock:
                    self.stats.failed += 1
            finally:
                self.queue.task_done()

    def close(self, drain: bool = True, timeout: float | None = None) -> Stats:
        """Stop the worker: with drain, frames already queued are processed first; else discarded."""
        if not drain:
            while True:
                try:
                    self.queue.get(timeout=0)
                    self.queue.task_done()
                except queue.Empty:
                    break
        self._stop.set()
        self._thread.join(timeout)
        return self.stats

    def __enter__(self) -> "FrameWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------- watch-folder mode


@dataclass
class _Seen:
    signature: tuple[int, int]
    polls: int = 1


@dataclass
class WatchStats(Stats):
    failures: list[str] = field(default_factory=list)


class FolderWatcher:
    """Poll a folder, pick complete image files, restore them through a bounded drop-oldest queue.

    poll() scans once and queues the files that became complete; process_one() restores the next
    queued file. run() loops both (a poller on the calling thread, one worker thread).
    """

    def __init__(
        self,
        model: RestorationModel,
        in_dir: str | os.PathLike,
        out_dir: str | os.PathLike,
        processed_dir: str | os.PathLike | None = None,
        failed_dir: str | os.PathLike | None = None,
        dropped_dir: str | os.PathLike | None = None,
        stable_polls: int = 2,
        maxsize: int = 8,
        out_format: str | None = None,
        quality: int = DEFAULT_QUALITY,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        quiet: bool = False,
    ) -> None:
        if stable_polls < 1:
            raise ValueError("stable_polls must be at least 1")
        self.model = model
        self.in_dir = Path(in_dir)
        self.out_dir = Path(out_dir)
        self.processed_dir = Path(processed_dir) if processed_dir else self.in_dir / "processed"
        self.failed_dir = Path(failed_dir) if failed_dir else self.in_dir / "failed"
        self.dropped_dir = Path(dropped_dir) if dropped_dir else self.in_dir / "dropped"
        self.stable_polls = int(stable_polls)
        self.queue = DropOldestQueue(maxsize)
        self.out_ext = None if out_format is None else _ext_for(out_format)
        self.quality = quality
        self.max_pixels = max_pixels
        self.quiet = quiet
        self.stats = WatchStats()
        self._seen: dict[str, _Seen] = {}  # only files present in the last scan: bounded by the folder
        self._queued: set[str] = set()  # names in the queue or being processed
        self._lock = threading.Lock()
        for folder in (self.out_dir, self.processed_dir, self.failed_dir, self.dropped_dir):
            folder.mkdir(parents=True, exist_ok=True)

    # -- scanning
    def _candidate(self, entry: os.DirEntry) -> bool:
        name = entry.name
        if name.startswith(".") or name.lower().endswith(TEMP_SUFFIXES):
            return False
        path = Path(name)
        if path.suffix.lower() not in INPUT_EXTENSIONS or path.stem.endswith((OUTPUT_SUFFIX, COMPARE_SUFFIX)):
            return False
        try:
            return entry.is_file(follow_symlinks=False)
        except OSError:
            return False

    def poll(self) -> list[Path]:
        """Scan the input folder once; queue and return the files that are now complete."""
        current: dict[str, _Seen] = {}
        ready: list[str] = []
        try:
            entries = list(os.scandir(self.in_dir))
        except OSError as exc:
            log.warning("cannot list %s: %s", self.in_dir, exc.strerror or exc)
            return []
        for entry in entries:
            if not self._candidate(entry):
                continue
            with self._lock:
                if entry.name in self._queued:
                    continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:  # vanished between listing and stat
                continue
            signature = (st.st_size, st.st_mtime_ns)
            seen = self._seen.get(entry.name)
            if seen is not None and seen.signature == signature:
                seen.polls += 1
            else:
                seen = _Seen(signature)
            current[entry.name] = seen
            if seen.polls >= self.stable_polls and st.st_size > 0:
                ready.append(entry.name)
        for name in sorted(ready, key=lambda n: (current[n].signature[1], n)):  # oldest first
            del current[name]
            self._enqueue(self.in_dir / name)
        self._seen = current
        return [self.in_dir / n for n in ready]

    def _enqueue(self, path: Path) -> None:
        with self._lock:
            self._queued.add(path.name)
            self.stats.submitted += 1
        evicted = self.queue.put(path)
        if evicted is not None:
            with self._lock:
                self.stats.dropped += 1
                self._queued.discard(evicted.name)
            moved = _move(evicted, self.dropped_dir)
            log.warning("queue full (%d waiting): dropped the oldest file %s -> %s", self.queue.maxsize, evicted.name,
                        moved.parent if moved else "(gone)")

    # -- processing
    def output_for(self, path: Path) -> Path:
        ext = self.out_ext or (path.suffix if path.suffix.lower() in FORMATS else ".png")
        return self.out_dir / f"{path.stem}{OUTPUT_SUFFIX}{ext}"

    def process(self, path: Path) -> bool:
        """Restore one file: output written atomically, input moved to processed/ (or failed/)."""
        job = Job(input=path, output=self.output_for(path))
        start = time.perf_counter()
        try:
            if not path.is_file():
                raise errors.MissingInputError(f"input vanished: {path}")
            restore_file(self.model, job, self.quality, self.max_pixels)
            ok, message = True, ""
        except EdgeRestoreError as exc:
            ok, message = False, str(exc)
        except MemoryError:
            ok, message = False, str(out_of_memory(job))
        except Exception as exc:  # a bad file must not stop the service
            ok, message = False, f"{path}: unexpected {type(exc).__name__}: {exc}"
        took = time.perf_counter() - start
        if path.exists():
            _move(path, self.processed_dir if ok else self.failed_dir)
        with self._lock:
            self._queued.discard(path.name)
            if ok:
                self.stats.processed += 1
                self.stats.seconds += took
            else:
                self.stats.failed += 1
                self.stats.failures = (self.stats.failures + [message])[-20:]
        if not ok:
            print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
        elif not self.quiet:
            print(f"{job.output}  ({took * 1000:.0f} ms)", flush=True)
        return ok

    def process_one(self, timeout: float | None = 0.0) -> bool | None:
        """Process the next queued file: True/False for success, None if the queue stayed empty."""
        try:
            path = self.queue.get(timeout=timeout)
        except queue.Empty:
            return None
        try:
            return self.process(path)
        finally:
            self.queue.task_done()

    def idle(self) -> bool:
        """Nothing queued or in progress, and no file still waiting to become complete.

        (A file that stays empty is never taken and does not count as waiting.)
        """
        with self._lock:
            if self._queued:
                return False
        return all(seen.polls >= self.stable_polls for seen in self._seen.values())

    def run(self, interval: float = 1.0, stop: threading.Event | None = None, once: bool = False) -> WatchStats:
        """Poll every `interval` s and process on a worker thread until `stop` is set.

        once: stop when the folder has no more (complete or incomplete) candidates and the queue is empty.
        """
        stop = stop or threading.Event()
        worker_stop = threading.Event()

        def work() -> None:
            while not worker_stop.is_set():
                self.process_one(timeout=0.1)

        worker = threading.Thread(target=work, name="edge-restore-watch", daemon=True)
        worker.start()
        try:
            while not stop.is_set():
                self.poll()
                if once and self.idle():
                    break
                stop.wait(interval)
        finally:
            worker_stop.set()
            worker.join()
        return self.stats


def _move(path: Path, folder: Path) -> Path | None:
    """Move `path` into `folder` (same file system: a rename), never overwriting: name-1.ext, name-2.ext, ..."""
    target = folder / path.name
    n = 0
    while target.exists():
        n += 1
        target = folder / f"{path.stem}-{n}{path.suffix}"
    try:
        os.replace(path, target)
        return target
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot move %s to %s: %s", path, folder, exc.strerror or exc)
        return None


def _ext_for(fmt: str) -> str:
    ext = fmt.lower() if fmt.startswith(".") else "." + fmt.lower()
    if ext not in FORMATS:
        raise ValueError(f"unsupported output format {fmt!r} (use {', '.join(sorted(e[1:] for e in FORMATS))})")
    return ext


# ----------------------------------------------------------------------------------------- cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Watch a folder and restore every complete image file that lands in it (see docs/watch-mode.md).",
        epilog="exit codes: 0 stopped cleanly (SIGTERM/SIGINT, or --once with no failures), 1 usage error, "
        "2 --once with failed files, 78 bad model or device",
    )
    p.add_argument("-m", "--model", required=True, metavar="PATH|NAME", help="model file or shipped short name")
    p.add_argument("--in", dest="in_dir", required=True, metavar="DIR", help="folder to watch (not recursive)")
    p.add_argument("--out", dest="out_dir", required=True, metavar="DIR", help="folder for restored images")
    p.add_argument("--processed", metavar="DIR", help="where inputs go once restored (default IN/processed)")
    p.add_argument("--failed", metavar="DIR", help="where inputs that cannot be restored go (default IN/failed)")
    p.add_argument("--dropped", metavar="DIR", help="where inputs dropped from a full queue go (default IN/dropped)")
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds between polls (default 1)")
    p.add_argument("--stable-polls", type=int, default=2, metavar="N",
                   help="a file is complete when its size and mtime are unchanged in N polls (default 2)")
    p.add_argument("--queue", type=int, default=8, metavar="N",
                   help="at most N complete files wait; beyond that the oldest is dropped (default 8)")
    p.add_argument("--format", metavar="EXT", help="output format, e.g. png (default: the input's)")
    p.add_argument("--quality", type=int, default=DEFAULT_QUALITY, metavar="Q", help=f"JPEG/WebP quality (default {DEFAULT_QUALITY})")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N", help="refuse larger images")
    p.add_argument("--threads", type=_threads, default=None, metavar="N", help="interpreter threads (default: all cores)")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="cpu (default) or edgetpu")
    p.add_argument("--cpu-fallback", action="store_true", help="with --device edgetpu: use the CPU if no Edge TPU is found")
    p.add_argument("--once", action="store_true", help="process what is in the folder, then exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no line per restored file")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # --help: 0; usage errors: 1 (as edge-restore), not argparse's 2
        return errors.EXIT_OK if exc.code in (0, None) else errors.EXIT_USAGE
    if args.interval <= 0 or args.stable_polls < 1 or args.queue < 1:
        print(f"{PROG}: error: --interval must be > 0, --stable-polls and --queue at least 1", file=sys.stderr)
        return errors.EXIT_USAGE
    if not Path(args.in_dir).is_dir():
        print(f"{PROG}: error: input folder not found: {args.in_dir}", file=sys.stderr)
        return errors.EXIT_NO_INPUT
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROG}: warning: %(message)s"))
    log.addHandler(handler)
    old_propagate, log.propagate = log.propagate, False
    stop = threading.Event()
    previous = {}
    try:
        try:
            model = load_model(args.model, threads=args.threads, device=args.device, cpu_fallback=args.cpu_fallback)
            refuse_deblur_prior(model)  # watch mode denoises: it has no --kernel
            watcher = FolderWatcher(
                model, args.in_dir, args.out_dir, args.processed, args.failed, args.dropped,
                stable_polls=args.stable_polls, maxsize=args.queue, out_format=args.format, quality=args.quality,
                max_pixels=args.max_pixels, quiet=args.quiet,
            )
        except EdgeRestoreError as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except (ValueError, OSError) as exc:
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            return errors.EXIT_USAGE
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: stop.set())
        if not args.quiet:
            print(f"{PROG}: watching {args.in_dir} every {args.interval:g}s -> {args.out_dir} "
                  f"({model.backend.describe()})", file=sys.stderr, flush=True)
        stats = watcher.run(args.interval, stop=stop, once=args.once)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        log.removeHandler(handler)
        log.propagate = old_propagate
    print(f"{PROG}: {stats.line()}", file=sys.stderr, flush=True)
    return errors.EXIT_PARTIAL if (args.once and stats.failed) else errors.EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
