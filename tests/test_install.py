"""Installed like a user: a wheel built from this tree, in a fresh venv, run from another folder.

The wheel test needs pip to reach PyPI (or its cache) for numpy, Pillow and ai-edge-litert; it is
marked slow (about 20-40 s: a venv, the runtime dependencies, three commands).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edge_runtime import catalog
from edge_runtime.api import MODELS_ENV
from edge_runtime.cli import main
from edge_runtime.errors import ModelError
from edge_runtime.extras import run_with_extra

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "edge_runtime" / "samples" / "sample_noisy.png"
BUILD_FILES = ("pyproject.toml", "setup.py", "README.md", "edge_runtime", "train", "export", "models")
# every deployable model in models/ ships, with its card; nothing else from models/ does
SHIPPED = {p.name for p in (ROOT / "models").glob("*_int8.tflite")}
CARDS = {p.name for p in (ROOT / "models").glob("*.md")}


def _bin(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


def build_wheel(dest: Path, work: Path) -> Path:
    """Build the wheel from a copy of the tree, with generated files planted to prove they stay out."""
    src = work / "src"
    src.mkdir()
    for name in BUILD_FILES:
        path = ROOT / name
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
        shutil.copytree(path, src / name, ignore=ignore) if path.is_dir() else shutil.copy(path, src / name)
    # What the README's first command leaves beside the sample (issue 19: once packed, 939 KB).
    shutil.copy(SAMPLE, src / "edge_runtime" / "samples" / "sample_noisy_restored.png")
    shutil.copy(SAMPLE, src / "edge_runtime" / "samples" / "sample_noisy_compare.png")
    # No download of setuptools when this environment has it.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") is not None else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(dest), *isolation],
                   check=True, cwd=work)
    (wheel,) = dest.glob("edge_restore-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    return build_wheel(work / "dist", work)


def test_wheel_contents_and_top_level_names(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top_level = zf.read(next(n for n in names if n.endswith(".dist-info/top_level.txt"))).decode().split()
    assert sorted(top_level) == ["edge_restore", "edge_runtime"]
    roots = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert roots == {"edge_restore", "edge_runtime"}  # no generic `train` / `export` in site-packages
    assert "edge_restore/train/cli.py" in names and "edge_restore/export/cli.py" in names
    models = {n.split("/")[-1] for n in names if n.startswith("edge_runtime/models/")}
    assert len(SHIPPED) >= 3 and "denoise_int8.tflite" in SHIPPED
    assert models == SHIPPED | CARDS | {"SHA256SUMS"}
    assert not [n for n in names if n.endswith((".pt", ".onnx")) or "_restored" in n or "_compare" in n]
    # the shipped INT8 models hardly compress; everything else (code, cards, sample, NIQE/BRISQUE
    # parameters) stays under 1 MB, so a stray float model or checkpoint fails here
    models_bytes = sum((ROOT / "models" / name).stat().st_size for name in SHIPPED)
    assert wheel.stat().st_size < models_bytes + 1_000_000


def test_wheel_records_model_sha256(wheel):
    with zipfile.ZipFile(wheel) as zf:
        sums = zf.read("edge_runtime/models/SHA256SUMS").decode()
    recorded = dict(reversed(line.split("  ")) for line in sums.splitlines())
    assert set(recorded) == SHIPPED
    for name, digest in recorded.items():
        assert digest == catalog.sha256_file(ROOT / "models" / name)


@pytest.mark.slow
def test_installed_wheel_runs_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = _bin(venv, "python")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{wheel}[edge]"], check=True)
    elsewhere = tmp_path / "photos"
    elsewhere.mkdir()
    shutil.copy(SAMPLE, elsewhere / "x.png")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", MODELS_ENV)}

    def run(*args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([str(a) for a in args], cwd=elsewhere, env={**env, **kw}, capture_output=True, text=True)

    done = run(_bin(venv, "edge-restore"), "--model", "denoise", "x.png")
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "x_restored.png").stat().st_size > 0

    listed = run(_bin(venv, "edge-restore"), "--list-models")
    lines = [ln for ln in listed.stdout.splitlines() if "_int8 " in ln]
    assert len(lines) == len(SHIPPED) and all(str(venv) in ln and "site-packages" in ln for ln in lines)
    assert "30.06 dB" in next(ln for ln in lines if ln.startswith("denoise_int8 "))

    probe = run(py, "-c", "import importlib.util as u; print([m for m in ('train', 'export', 'torch', 'tensorflow') if u.find_spec(m)])")
    assert probe.stdout.strip() == "[]", probe.stderr

    needs = run(_bin(venv, "edge-restore-train"), "--help")
    assert needs.returncode == 78 and needs.stdout == ""
    assert needs.stderr.strip().splitlines() == [needs.stderr.strip()] and 'pip install "edge-restore[train]"' in needs.stderr

    # Explicit paths and $EDGE_RESTORE_MODELS keep working; a changed shipped model is refused by short name.
    site_model = next(Path(ln.split()[-1]) for ln in lines if ln.startswith("denoise_int8 "))
    own = tmp_path / "own"
    own.mkdir()
    shutil.copy(site_model, own / "mine_int8.tflite")
    mine = run(_bin(venv, "edge-restore"), "--model", "mine", "x.png", "-o", "m.png", EDGE_RESTORE_MODELS=str(own))
    assert mine.returncode == 0, mine.stderr
    with open(site_model, "ab") as fh:
        fh.write(b"\0")
    tampered = run(_bin(venv, "edge-restore"), "--model", "denoise", "x.png", "-o", "t.png")
    assert tampered.returncode == 78 and "SHA-256" in tampered.stderr


def test_changed_model_is_refused_by_short_name(tmp_path, int8_model, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(int8_model, folder / "denoise_int8.tflite")
    (folder / "SHA256SUMS").write_text(f"{catalog.sha256_file(folder / 'denoise_int8.tflite')}  denoise_int8.tflite\n")
    catalog.verify_shipped(folder / "denoise_int8.tflite")  # as built: no error
    with open(folder / "denoise_int8.tflite", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelError, match="SHA-256 recorded when the package was built"):
        catalog.verify_shipped(folder / "denoise_int8.tflite")
    monkeypatch.setenv("EDGE_RESTORE_MODELS", str(folder))
    image = tmp_path / "a.png"
    shutil.copy(SAMPLE, image)
    assert main(["--model", "denoise", str(image), "-q"]) == 78
    # An explicit path is the user's own file: not checked against the shipped sums.
    assert main(["--model", str(folder / "denoise_int8.tflite"), str(image), "-q", "-o", str(tmp_path / "b.png")]) == 0


def test_list_models_shows_size_and_card_psnr(capsys, monkeypatch):
    monkeypatch.delenv("EDGE_RESTORE_MODELS", raising=False)
    assert main(["--list-models"]) == 0
    out = capsys.readouterr().out
    assert "INT8 PSNR (model card)" in out.splitlines()[0]
    line = next(ln for ln in out.splitlines() if ln.startswith("denoise_int8 "))
    assert "30.06 dB (Set14, sigma 25)" in line and " KB " in line and line.endswith("denoise_int8.tflite")


def test_missing_extra_is_one_line_and_exit_78(capsys):
    def load():
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    assert run_with_extra("edge-restore-train", "train", load, []) == 78
    err = capsys.readouterr().err
    assert err == 'edge-restore-train: error: needs the train extra (torch is not installed): pip install "edge-restore[train]"\n'

    def own_bug():
        raise ModuleNotFoundError("No module named 'train.nope'", name="train.nope")

    with pytest.raises(ModuleNotFoundError):  # a broken import of this project is not a missing extra
        run_with_extra("edge-restore-train", "train", own_bug, [])


def test_python_m_train_still_works_from_the_checkout():
    done = subprocess.run([sys.executable, "-m", "train", "--summary"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "preset" in done.stdout, done.stderr
