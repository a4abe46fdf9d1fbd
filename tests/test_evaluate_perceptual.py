"""edge-restore-eval --perceptual: NIQE/BRISQUE (and LPIPS when available) per image and mean in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from train import evaluate as ev

skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    clean = tmp_path_factory.mktemp("clean")
    Image.fromarray(skdata.astronaut()[40:232, 100:292]).save(clean / "astronaut.png")  # 192x192: 4 NIQE blocks
    Image.fromarray(skdata.coffee()[90:154, 220:284]).save(clean / "small.png")  # 64x64: too small for NIQE
    out = tmp_path_factory.mktemp("report")
    rc = ev.main(["--clean", str(clean), "--degradation", "awgn:25", "--methods", "identity,nlm-opencv",
                  "--perceptual", "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


def test_perceptual_scores_rank_the_denoiser_above_the_noisy_input(report):
    results = json.loads((report / "results.json").read_text())
    assert results["config"]["perceptual"] is True
    deg = results["degradations"]["awgn:25"]
    assert deg["perceptual"][:2] == ["niqe", "brisque"]
    mean = deg["mean"]
    # NIQE only on the 192x192 crop; BRISQUE on both images
    assert mean["identity"]["niqe"] > mean["nlm-opencv"]["niqe"] + 2.0
    assert mean["identity"]["brisque"] > mean["nlm-opencv"]["brisque"] + 20.0
    rows = {r["image"]: r for r in deg["per_image"]}
    assert rows["small.png"]["niqe"] == {"identity": None, "nlm-opencv": None}
    assert rows["small.png"]["brisque"]["identity"] > 40.0
    assert mean["identity"]["niqe"] == pytest.approx(rows["astronaut.png"]["niqe"]["identity"])
    # the clean reference scores as the most natural of the three on this photo
    assert deg["clean_mean"]["niqe"] == pytest.approx(rows["astronaut.png"]["clean_scores"]["niqe"])
    assert deg["clean_mean"]["niqe"] < mean["nlm-opencv"]["niqe"] < mean["identity"]["niqe"]
    assert deg["clean_mean"]["brisque"] < mean["identity"]["brisque"]


def test_perceptual_report_tables_and_plot(report):
    text = (report / "report.md").read_text()
    assert "| method | mean NIQE | mean BRISQUE" in text
    assert "Per image, NIQE / BRISQUE" in text
    assert "| small.png | - / " in text  # unscored NIQE shows as '-'
    assert "| *clean reference* |" in text
    assert (report / "perception_vs_distortion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((report / "results.json").read_text())
    if "lpips" not in results["degradations"]["awgn:25"]["perceptual"]:
        assert "LPIPS skipped:" in text


def test_without_the_option_no_perceptual_keys(tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    Image.fromarray(skdata.coffee()[90:154, 220:284]).save(clean / "c.png")
    results = ev.run(ev.build_parser().parse_args(["--clean", str(clean), "--degradation", "awgn:25", "--methods",
                                                   "identity", "--out", str(tmp_path / "r"), "--no-progress"]), [])
    deg = results["degradations"]["awgn:25"]
    assert "perceptual" not in deg and "niqe" not in deg["mean"]["identity"]
    assert "NIQE" not in (tmp_path / "r" / "report.md").read_text()
