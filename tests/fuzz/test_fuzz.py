"""Fuzz targets as hypothesis tests (a short smoke run in the default suite) and the corpus replay.

The long bounded run is scripts/fuzz.py (`make fuzz`), which drives these same tests through
hypothesis' fuzz_one_input. Every input that ever made a target fail is kept in corpus/<target>/
and replayed here, so a fixed finding stays fixed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import targets

FUZZ_SETTINGS = settings(
    max_examples=60, deadline=None, database=None, derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@FUZZ_SETTINGS
@given(targets.image_inputs())
def test_fuzz_image(case):
    targets.run_image(*case)


@FUZZ_SETTINGS
@given(targets.model_inputs())
def test_fuzz_model(case):
    targets.run_model(*case)


@settings(FUZZ_SETTINGS, max_examples=20)
@given(targets.tflite_inputs())
def test_fuzz_interpreter(case):
    targets.run_interpreter(*case)


FUZZ_TESTS = {"image": test_fuzz_image, "model": test_fuzz_model, "interpreter": test_fuzz_interpreter}


def _corpus() -> list[tuple[str, Path]]:
    return [(target, path) for target in targets.RUNNERS
            for path in sorted((targets.CORPUS / target).glob("*.bin"))]


@pytest.mark.parametrize("target,path", [c for c in _corpus() if c[0] != "interpreter"],
                         ids=lambda v: v.name if isinstance(v, Path) else v)
def test_corpus_regressions(target, path):
    """Each saved finding now gives only a documented result."""
    assert targets.run_saved(target, path.read_bytes()).split()[-1] in ("refused", "restored", "accepted")


def test_interpreter_corpus_regressions():
    """Models that crashed the TFLite interpreter (segfault/abort) are now refused by the validator.

    Replayed in a subprocess: if the validator ever lets one through again, the crash kills that
    process, not the test run.
    """
    paths = [str(p) for t, p in _corpus() if t == "interpreter"]
    if not paths:
        pytest.skip("no interpreter findings saved")
    code = (
        "import sys; sys.path[:0] = sys.argv[1:3]\n"
        "import targets\n"
        "for path in sys.argv[3:]:\n"
        "    print(path, targets.run_saved('interpreter', open(path, 'rb').read()), flush=True)\n"
    )
    here = Path(__file__).resolve().parent
    out = subprocess.run([sys.executable, "-c", code, str(here), str(here.parent), *paths],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("/")]
    assert len(lines) == len(paths)
    assert all(line.endswith("refused by the validator") for line in lines), lines
