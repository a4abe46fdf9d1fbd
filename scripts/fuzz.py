#!/usr/bin/env python3
"""Bounded fuzzing of edge-restore's input handling (image pipeline, model validators, interpreter).

    python scripts/fuzz.py                          # all targets, 100,000 executions or 600 s each
    python scripts/fuzz.py --target image --execs 20000 --seconds 60
    make fuzz                                       # the same, niced

The targets and their input strategies are in tests/fuzz/targets.py; the hypothesis tests in
tests/fuzz/test_fuzz.py are driven here through `fuzz_one_input` with seeded random buffers
(hypothesis turns each buffer into a seed file plus a program of mutations). Each target runs in
a worker subprocess, so a hard crash (a signal) or a hang inside C code is caught by this
parent: the worker keeps the input in progress in a file, and the parent kills a worker whose
execution count stops moving for --timeout seconds. A Python-level exception that is not one of
the target's documented error types is a finding too.

Every finding's input is saved to tests/fuzz/corpus/<target>/<sha1>.bin (at most three per
distinct failure), where tests/fuzz/test_fuzz.py replays it as a regression test. Exit status: 0
no findings, 1 findings, 2 usage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ_DIR = ROOT / "tests" / "fuzz"
TARGETS = ("image", "model", "interpreter")


# ------------------------------------------------------------------------------------ worker


def _signature(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    text = " ".join(str(exc).split())[:120]
    return f"{type(exc).__name__} at {where}: {text}"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _save(corpus: Path, blob: bytes) -> Path:
    corpus.mkdir(parents=True, exist_ok=True)
    path = corpus / f"{hashlib.sha1(blob).hexdigest()[:16]}.bin"
    path.write_bytes(blob)
    return path


def worker(target: str, seconds: float, execs: int, seed: int, state: Path, corpus: Path) -> None:
    """Run one target until `execs` executions or `seconds`; report through files in `state`."""
    import logging
    import warnings

    logging.disable(logging.CRITICAL)
    warnings.simplefilter("ignore")
    sys.path[:0] = [str(FUZZ_DIR), str(ROOT / "tests")]
    import targets
    import test_fuzz

    fuzz = test_fuzz.FUZZ_TESTS[target].hypothesis.fuzz_one_input
    targets.image_seeds(), targets.model_seeds()  # build seeds and load the model before timing
    targets._model()
    rng = random.Random(seed)
    targets.RECORD_FD = os.open(state / "current.bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    progress = state / "progress.json"
    seen: dict[str, int] = {}
    findings = []
    start = time.monotonic()
    last_report = 0.0
    done = targets.EXECUTIONS[target]
    while done < execs and time.monotonic() - start < seconds:
        buf = rng.randbytes(rng.choice((64, 256, 1024, 4096)))
        try:
            fuzz(buf)
        except Exception as exc:  # an undocumented exception type: a finding
            sig = _signature(exc)
            seen[sig] = seen.get(sig, 0) + 1
            if seen[sig] <= 3:
                path = _save(corpus, targets.LAST_INPUT[target])
                findings.append({"kind": "exception", "signature": sig, "input": _shown(path)})
        done = targets.EXECUTIONS[target]
        now = time.monotonic()
        if now - last_report > 0.5:
            last_report = now
            _write_json(progress, {"executions": done, "seconds": now - start, "findings": findings, "counts": seen,
                                   "outcomes": targets.OUTCOMES[target]})
    _write_json(progress, {"executions": done, "seconds": time.monotonic() - start, "findings": findings,
                           "counts": seen, "outcomes": targets.OUTCOMES[target], "finished": True})


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------ parent


def run_target(target: str, seconds: float, execs: int, seed: int, timeout: float, corpus: Path) -> dict:
    """Run workers (restarting after a crash or hang) until the budget is spent; returns the totals."""
    total = {"target": target, "executions": 0, "seconds": 0.0, "findings": [], "crashes": 0, "hangs": 0,
             "signatures": {}, "outcomes": {}}
    started = time.monotonic()
    round_ = 0
    while total["executions"] < execs and time.monotonic() - started < seconds:
        left = seconds - (time.monotonic() - started)
        with tempfile.TemporaryDirectory(prefix=f"fuzz-{target}-") as tmp:
            state = Path(tmp)
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", target, "--seconds", str(left),
                   "--execs", str(execs - total["executions"]), "--seed", str(seed + 1000 * round_),
                   "--state", str(state), "--corpus", str(corpus)]
            log = open(state / "stderr.log", "wb")  # libtiff & co. write warnings straight to fd 2
            (state / "inputs").mkdir()
            env = {**os.environ, "EDGE_RESTORE_FUZZ_DIR": str(state / "inputs")}
            proc = subprocess.Popen(cmd, cwd=ROOT, stderr=log, env=env)
            last_count, last_change = -1, time.monotonic()
            hung = False
            while proc.poll() is None:
                time.sleep(0.5)
                report = _read_json(state / "progress.json")
                count = report.get("executions", 0)
                if count != last_count:
                    last_count, last_change = count, time.monotonic()
                elif report and time.monotonic() - last_change > timeout:
                    hung = True
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
            log.close()
            report = _read_json(state / "progress.json")
            total["executions"] += report.get("executions", 0)
            total["findings"] += report.get("findings", [])
            for name, n in report.get("outcomes", {}).items():
                total["outcomes"][name] = total["outcomes"].get(name, 0) + n
            for sig, n in report.get("counts", {}).items():
                total["signatures"][sig] = total["signatures"].get(sig, 0) + n
            if hung or (proc.returncode not in (0, None) and not report.get("finished")):
                kind = "hang" if hung else f"crash (exit {proc.returncode})"
                total["hangs" if hung else "crashes"] += 1
                current = state / "current.bin"
                if current.is_file() and current.stat().st_size:
                    path = _save(corpus / target, current.read_bytes())
                    total["findings"].append({"kind": kind, "signature": kind, "input": _shown(path)})
                    total["executions"] += 1
            elif not report.get("finished"):
                total["crashes"] += 1
                total["findings"].append({"kind": "worker failed", "signature": f"exit {proc.returncode}"})
            if proc.returncode:
                tail = (state / "stderr.log").read_bytes().decode("utf-8", "replace").splitlines()[-15:]
                print(f"{target} worker exited with {proc.returncode}:", *tail, sep="\n  ", file=sys.stderr)
        round_ += 1
    total["seconds"] = round(time.monotonic() - started, 1)
    return total


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    p.add_argument("--seconds", type=float, default=600.0, help="time bound per target (default 600)")
    p.add_argument("--execs", type=int, default=100_000, help="stop a target after this many executions (default 100,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds without progress that count as a hang")
    p.add_argument("--corpus", type=Path, default=FUZZ_DIR / "corpus")
    p.add_argument("--json", type=Path, help="also write the summary here")
    p.add_argument("--worker", choices=TARGETS, help=argparse.SUPPRESS)
    p.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.seconds, args.execs, args.seed, args.state, args.corpus / args.worker)
        return 0
    results = []
    for target in TARGETS if args.target == "all" else (args.target,):
        result = run_target(target, args.seconds, args.execs, args.seed, args.timeout, args.corpus)
        results.append(result)
        rate = result["executions"] / result["seconds"] if result["seconds"] else 0.0
        print(f"{target}: {result['executions']:,} executions in {result['seconds']:.0f} s ({rate:,.0f}/s), "
              f"{len(result['signatures'])} distinct exceptions, {result['crashes']} crashes, {result['hangs']} hangs")
        print("  outcomes: " + ", ".join(f"{name} {n:,}" for name, n in sorted(result["outcomes"].items())))
        for sig, n in sorted(result["signatures"].items(), key=lambda kv: -kv[1]):
            print(f"  {n:6d} x {sig}")
        for finding in result["findings"]:
            if finding.get("input"):
                print(f"  saved {finding['input']}  ({finding['signature']})")
        if result["executions"] < args.execs:
            print(f"  note: fewer than {args.execs:,} executions within {args.seconds:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if any(r["findings"] or r["signatures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
