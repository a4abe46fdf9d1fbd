"""Training CLI end to end on tiny models and procedural data: it learns, resumes, and fine-tunes with QAT."""

import json

import numpy as np
import pytest
import torch

from train.checkpoint import CheckpointError, load_checkpoint, load_restorer
from train.cli import main as train_main
from train.train import learning_rate, TrainConfig

pytestmark = pytest.mark.slow

TINY = ["--preset", "tiny", "--patch", "32", "--batch", "8", "--sigma", "25", "25", "--poisson-prob", "0",
        "--threads", "1", "--lr", "5e-3", "--warmup", "10", "--ema", "0.9"]


def val_history(run_dir):
    lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [next(iter(l["val_psnr"].values())) for l in lines if "val_psnr" in l]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three photos that scikit-image ships (no download), as a training folder."""
    data = pytest.importorskip("skimage.data")
    from PIL import Image
    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def float_run(tmp_path_factory, photos):
    out = tmp_path_factory.mktemp("float")
    assert train_main([*TINY, "--data", str(photos), "--steps", "150", "--val-every", "150", "--ckpt-every", "50",
                       "--out", str(out)]) == 0
    return out


def test_training_denoises_an_unseen_photo(float_run):
    from skimage.data import rocket
    from train.degradations import DegradationConfig, degrade
    from edge_runtime.metrics import psnr
    model, ckpt = load_restorer(float_run / "best.pt")
    assert ckpt["step"] == 150 and tuple(ckpt["model_config"]["widths"]) == (16, 32, 32)
    clean = rocket()[100:228, 200:328].astype(np.float32) / 255
    noisy = degrade(clean, DegradationConfig(sigma_min=25, sigma_max=25, poisson_prob=0), np.random.default_rng(1))
    with torch.no_grad():
        out = model(torch.from_numpy(noisy.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0).clip(0, 1)
    assert psnr(out, clean) > psnr(noisy, clean) + 3.0


def test_resume_continues_from_the_last_checkpoint(float_run, photos, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(float_run, run)
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["step"] == 150
    assert train_main([*TINY, "--data", str(photos), "--steps", "170", "--val-every", "1000", "--ckpt-every", "10", "--out", str(run)]) == 0
    resumed = load_checkpoint(run / "last.pt")
    assert resumed["step"] == 170
    steps = [json.loads(l).get("step") for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 170 and steps.count(50) == 1  # continued from 150, not from 0 again
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows.count(rows[0]) == 1 and [r.split(",")[0] for r in rows[1:]] == ["50", "100", "150", "170"]


def test_checkpoints_carry_the_model_contract(float_run, tmp_path):
    from edge_runtime.contract import ModelContract
    from train.checkpoint import strip_checkpoint
    for name in ("best.pt", "last.pt"):
        contract = ModelContract.from_json(load_checkpoint(float_run / name)["contract"])
        assert (contract.task, contract.channels, contract.size_multiple, contract.tile_size) == ("denoise", 3, 4, 256)
        assert contract.preset == "tiny" and contract.layout == "NCHW" and contract.quantization == "float"
        assert contract.recipe["step"] == load_checkpoint(float_run / name)["step"]
    shipped = strip_checkpoint(float_run / "best.pt", tmp_path / "shipped.pt")
    assert ModelContract.from_json(load_checkpoint(shipped)["contract"]).task == "denoise"


def test_contract_task_channels_and_a_tile_size_that_does_not_fit(tmp_path, capsys):
    from edge_runtime.contract import ModelContract
    args = ["--preset", "tiny", "--patch", "32", "--batch", "2", "--threads", "1", "--task", "deblur", "--steps", "2",
            "--val-every", "1000", "--tile-size", "128"]
    assert train_main([*args, "--out", str(tmp_path / "deblur")]) == 0
    contract = ModelContract.from_json(load_checkpoint(tmp_path / "deblur" / "last.pt")["contract"])
    assert contract.task == "deblur" and contract.tile_size == 128
    assert train_main([*args[:-1], "130", "--out", str(tmp_path / "bad")]) == 1
    assert "tile_size 130 must be a positive multiple of size_multiple 4" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "last.pt").exists()


def test_metrics_csv_beside_the_jsonl(float_run):
    import csv
    with (float_run / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = (float_run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["step", "loss", "lr", "mpix_per_s"] and len(header) == 5 and header[4].startswith("val_psnr_")
    assert [int(r["step"]) for r in rows] == [50, 100, 150]
    assert all(float(r["loss"]) > 0 and float(r["lr"]) > 0 and float(r["mpix_per_s"]) > 0 for r in rows)
    assert [r[header[4]] for r in rows][:2] == ["", ""] and float(rows[2][header[4]]) == val_history(float_run)[-1]


def test_qat_needs_a_float_checkpoint(tmp_path, capsys):
    assert train_main([*TINY, "--qat", "--steps", "5", "--out", str(tmp_path)]) == 1
    assert "init-from" in capsys.readouterr().err


def test_qat_fine_tune_keeps_quality_and_stores_frozen_scales(float_run, photos, tmp_path):
    out = tmp_path / "qat"
    assert train_main([*TINY, "--data", str(photos), "--qat", "--init-from", str(float_run / "best.pt"), "--steps", "30", "--lr", "1e-4",
                       "--val-every", "30", "--calib-batches", "4", "--out", str(out)]) == 0
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["qat"] is True
    from edge_runtime.contract import ModelContract
    contract = ModelContract.from_json(ckpt["contract"])
    assert contract.quantization == "int8-qat" and contract.preset == "tiny"  # the architecture, not --preset's default
    scales = {k: float(v) for k, v in ckpt["ema"].items() if k.endswith(".scale")}
    assert len(scales) > 20 and all(s > 0 for s in scales.values())
    assert abs(scales["q_in.scale"] - 1 / 255) < 1e-9
    assert val_history(out)[-1] > val_history(float_run)[-1] - 0.5


def test_distillation_pulls_the_int8_model_towards_its_float_teacher(float_run, photos, tmp_path):
    from skimage.data import rocket
    from train.quant import set_quant_mode
    teacher, _ = load_restorer(float_run / "best.pt")
    set_quant_mode(teacher, "off")
    clean = torch.from_numpy(rocket()[100:228, 200:328].transpose(2, 0, 1)[None].astype(np.float32) / 255)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    with torch.no_grad():
        target = teacher(noisy)
    gaps = {}
    for weight in ("0", "20"):
        out = tmp_path / f"distill{weight}"
        assert train_main([*TINY, "--data", str(photos), "--qat", "--init-from", str(float_run / "best.pt"),
                           "--steps", "40", "--lr", "2e-3", "--val-every", "40", "--calib-batches", "4",
                           "--distill", weight, "--out", str(out)]) == 0
        student, ckpt = load_restorer(out / "last.pt")
        assert ckpt["train_config"]["distill"] == float(weight)
        with torch.no_grad():
            gaps[weight] = float((student(noisy) - target).abs().mean())
    assert gaps["20"] < 0.8 * gaps["0"], gaps


def test_distillation_is_a_qat_option(float_run, tmp_path, capsys):
    assert train_main([*TINY, "--init-from", str(float_run / "best.pt"), "--distill", "1", "--steps", "5",
                       "--out", str(tmp_path)]) == 1
    assert "--distill is a QAT option" in capsys.readouterr().err


def test_pickled_checkpoints_are_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"model_config": Evil(), "model": {}}))
    with pytest.raises(CheckpointError, match="refusing"):
        load_checkpoint(bad)
    assert not (tmp_path / "pwned").exists()


def test_learning_rate_schedule_warms_up_then_decays():
    cfg = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-5)
    lrs = [learning_rate(cfg, s) for s in range(100)]
    assert lrs[0] < lrs[9] == pytest.approx(1e-3)
    assert lrs[50] < lrs[10] and lrs[-1] == pytest.approx(1e-5, rel=0.05)


def test_warm_start_copies_every_weight_into_another_activation(float_run):
    from dataclasses import replace as dc_replace
    from train.checkpoint import warm_start_weights
    from train.model import Restorer, preset
    relu = Restorer(dc_replace(preset("tiny"), activation="relu"))
    source, _ = load_restorer(float_run / "best.pt")
    copied = warm_start_weights(relu, float_run / "best.pt")
    theirs = dict(source.named_parameters())
    assert copied == len(theirs) and all(torch.equal(p, theirs[k]) for k, p in relu.named_parameters())


def test_warm_start_into_another_block_layout_starts_new_blocks_as_identities(float_run):
    from train.checkpoint import warm_start_weights
    from train.model import InvertedResidual, Restorer, RestorerConfig

    # tiny is widths (16, 32, 32), blocks (1, 1, 1); this drops the full-resolution blocks and adds a level
    deeper = Restorer(RestorerConfig(widths=(16, 32, 32, 32), blocks=(0, 1, 1, 1), expansion=2))
    source, _ = load_restorer(float_run / "best.pt")
    theirs = dict(source.named_parameters())
    copied = warm_start_weights(deeper, float_run / "best.pt")
    shared = [k for k, _ in deeper.named_parameters() if k in theirs]
    assert copied == len(shared) > 20
    assert all(torch.equal(p, theirs[k]) for k, p in deeper.named_parameters() if k in theirs)
    new_blocks = [m for m in (*deeper.encoders[2], *deeper.decoders[2]) if isinstance(m, InvertedResidual)]
    assert new_blocks and all(not m.project.conv.weight.any() and not m.project.conv.bias.any() for m in new_blocks)
    assert not deeper.ups[2].proj.conv.weight.any()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():  # a new identity block changes nothing
        h = deeper.encoders[2][0].expand.conv.weight.new_zeros(1, 32, 2, 2) + 0.5
        assert torch.equal(deeper.encoders[2][0](h), h)
        assert deeper(x).shape == x.shape


def test_warm_start_refuses_another_shape_and_init_from(float_run, tmp_path, capsys):
    args = ["--steps", "1", "--out", str(tmp_path / "w"), "--warm-start", str(float_run / "best.pt")]
    assert train_main(["--preset", "small", *args]) == 1
    assert "cannot warm-start" in capsys.readouterr().err
    assert train_main([*TINY, *args, "--init-from", str(float_run / "best.pt")]) == 1
    assert "exclude each other" in capsys.readouterr().err


def test_loader_workers_train_on_exactly_the_same_batches(photos, tmp_path):
    runs = {}
    for workers in ("0", "2"):
        out = tmp_path / f"w{workers}"
        assert train_main([*TINY, "--data", str(photos), "--steps", "6", "--val-every", "6", "--camera-noise", "0.5",
                           "--loader-workers", workers, "--out", str(out)]) == 0
        runs[workers] = load_checkpoint(out / "last.pt")["model"]
    assert all(torch.equal(runs["0"][k], runs["2"][k]) for k in runs["0"])


def test_residual_step_changes_the_head_quantization_and_keeps_the_weights(float_run, photos, tmp_path):
    out = tmp_path / "qat-step1"
    assert train_main([*TINY, "--qat", "--init-from", str(float_run / "best.pt"), "--data", str(photos), "--steps", "4",
                       "--val-every", "4", "--calib-batches", "2", "--residual-step", "1", "--out", str(out)]) == 0
    model, ckpt = load_restorer(out / "best.pt")
    assert ckpt["model_config"]["residual_step"] == 1.0
    assert float(model.head.q_conv.scale) == pytest.approx(1 / 255)
    start, _ = load_restorer(float_run / "best.pt")
    assert float(start.head.q_conv.scale) == pytest.approx(2 / 255)  # the architecture's default is unchanged


class _Terminal:
    """A stderr that says it is a terminal (tqdm draws bars only on one)."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def test_qat_calibration_shows_progress_on_a_terminal(monkeypatch):
    import sys

    from train.data import PatchConfig, PatchSampler
    from train.degradations import DegradationConfig
    from train.model import build_restorer
    from train.quant import quant_mode
    from train.train import calibrate

    sampler = PatchSampler([], DegradationConfig(), PatchConfig(patch=32, batch=2, dead_leaves_prob=1.0), 3)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    model = build_restorer("tiny")
    calibrate(model, sampler, 3)
    assert "qat calibration" in terminal.text and "3/3" in terminal.text
    assert quant_mode(model) == "quant"
    other_rank = _Terminal()
    monkeypatch.setattr(sys, "stderr", other_rank)
    calibrate(build_restorer("tiny"), sampler, 2, progress=False)  # DDP: only rank 0 draws
    assert other_rank.text == ""
