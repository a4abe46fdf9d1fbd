"""Adversarial fine-tuning (`python -m train --gan`) on a tiny restorer: losses, checkpoints, resume, QAT after it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from edge_runtime.metrics import psnr
from train.checkpoint import load_checkpoint, load_restorer
from train.cli import main as train_main
from train.discriminator import DiscriminatorConfig, PatchDiscriminator
from train.gan import adversarial_losses, feature_matching, gradient_penalty

pytestmark = pytest.mark.slow

TINY = ["--patch", "32", "--batch", "4", "--sigma", "25", "25", "--poisson-prob", "0", "--jpeg-prob", "0",
        "--threads", "1"]
GAN = [*TINY, "--gan", "--lr", "2e-4", "--d-lr", "2e-4", "--d-width", "8", "--log-every", "1", "--val-every", "4",
       "--ckpt-every", "4"]


@pytest.fixture(scope="module")
def float_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("float")
    assert train_main([*TINY, "--preset", "tiny", "--lr", "5e-3", "--warmup", "5", "--ema", "0.9", "--steps", "60",
                       "--val-every", "60", "--out", str(out)]) == 0
    return out / "best.pt"


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory, float_ckpt):
    out = tmp_path_factory.mktemp("gan")
    assert train_main([*GAN, "--init-from", str(float_ckpt), "--steps", "4", "--out", str(out)]) == 0
    return out


def _events(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _denoise(model, noisy):
    with torch.no_grad():
        return model(torch.from_numpy(noisy.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0).clip(0, 1)


def test_gan_losses_are_finite_and_logged_every_step(gan_run):
    steps = [e for e in _events(gan_run) if "d_loss" in e]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    for e in steps:
        assert all(np.isfinite(e[k]) for k in ("loss", "content", "adv", "fm", "d_loss"))
        # relativistic BCE starts near log 2 for both players; content is a Charbonnier on [0, 1] pixels
        assert 0.3 < e["d_loss"] < 1.2 and 0.3 < e["adv"] < 1.2 and 0.0 < e["content"] < 0.2
    val = [e for e in _events(gan_run) if "val_niqe" in e]
    assert val[-1]["step"] == 4 and np.isfinite(next(iter(val[-1]["val_psnr"].values())))


def test_gan_checkpoint_is_a_restorer_checkpoint_that_still_denoises(gan_run, float_ckpt):
    from skimage.data import rocket
    from train.degradations import DegradationConfig, degrade

    model, ckpt = load_restorer(gan_run / "best.pt")
    start, start_ckpt = load_restorer(float_ckpt)
    assert ckpt["qat"] is False and ckpt["model_config"] == start_ckpt["model_config"]
    assert ckpt["train_config"]["degradation"]["task"] == "denoise" and ckpt["train_config"]["gan"]["loss"] == "relativistic"
    assert json.loads(ckpt["contract"])["quantization"] == "float"
    clean = rocket()[100:228, 200:328].astype(np.float32) / 255
    noisy = degrade(clean, DegradationConfig(sigma_min=25, sigma_max=25, poisson_prob=0, jpeg_prob=0),
                    np.random.default_rng(1))
    before, after = psnr(_denoise(start, noisy), clean), psnr(_denoise(model, noisy), clean)
    assert before > psnr(noisy, clean) + 1.0 and after > psnr(noisy, clean) + 1.0, (before, after)  # still a denoiser
    assert abs(after - before) < 1.0  # 4 small steps move it, but not far
    last = load_checkpoint(gan_run / "last.pt")
    assert last["step"] == 4 and {"discriminator", "d_optimizer", "optimizer", "gan_state"} <= last.keys()


def test_resume_continues_from_the_step_and_matches_an_uninterrupted_run(gan_run, float_ckpt, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(gan_run, resumed)
    assert train_main([*GAN, "--init-from", str(float_ckpt), "--steps", "6", "--out", str(resumed)]) == 0
    logged = [e["step"] for e in _events(resumed) if "d_loss" in e]
    assert logged == [1, 2, 3, 4, 5, 6]  # steps 1-4 from the first run, 5-6 after the resume
    straight = tmp_path / "straight"
    assert train_main([*GAN, "--init-from", str(float_ckpt), "--steps", "6", "--out", str(straight)]) == 0
    a, b = load_checkpoint(resumed / "last.pt"), load_checkpoint(straight / "last.pt")
    assert a["step"] == b["step"] == 6
    for key in ("model", "discriminator"):
        for name, t in a[key].items():
            torch.testing.assert_close(t, b[key][name], rtol=1e-5, atol=1e-6, equal_nan=True,
                                       msg=lambda m, k=f"{key}.{name}", x=t, y=b[key][name]: f"{k}: {x} vs {y}")


def test_qat_accepts_the_gan_result(gan_run, tmp_path):
    out = tmp_path / "qat"
    assert train_main([*TINY, "--qat", "--init-from", str(gan_run / "best.pt"), "--steps", "2", "--calib-batches", "2",
                       "--lr", "1e-4", "--val-every", "2", "--out", str(out)]) == 0
    model, ckpt = load_restorer(out / "best.pt")
    assert ckpt["qat"] is True and ckpt["step"] == 2


def test_gan_needs_a_starting_checkpoint(capsys):
    assert train_main(["--gan", "--steps", "1"]) == 1
    assert "--init-from" in capsys.readouterr().err


def test_discriminator_losses_and_penalty_numbers():
    torch.manual_seed(0)
    disc = PatchDiscriminator(DiscriminatorConfig(width=8, stages=2))
    x = torch.rand(2, 3, 32, 32)
    logits, feats = disc(x, with_features=True)
    assert logits.shape == (2, 1, 8, 8) and len(feats) == 3
    zero = torch.zeros(2, 1, 8, 8)
    d_loss, g_loss = adversarial_losses("relativistic", zero, zero)
    assert d_loss.item() == pytest.approx(np.log(2)) and g_loss.item() == pytest.approx(np.log(2))
    d_loss, g_loss = adversarial_losses("wgan-gp", zero + 2, zero - 1)
    assert d_loss.item() == pytest.approx(-3.0) and g_loss.item() == pytest.approx(1.0)
    assert feature_matching(feats, feats).item() == 0.0
    # a critic that is the identity's mean over 3072 values has gradient norm 1/sqrt(3072) * ... -> penalty < 1
    gp = gradient_penalty(PatchDiscriminator(DiscriminatorConfig(width=8, stages=2, spectral_norm=False)), x, x.flip(0))
    assert torch.isfinite(gp) and gp.item() >= 0.0


def test_wgan_gp_variant_trains_with_finite_losses(float_ckpt, tmp_path):
    out = tmp_path / "wgan"
    assert train_main([*GAN, "--gan-loss", "wgan-gp", "--init-from", str(float_ckpt), "--steps", "2",
                       "--out", str(out)]) == 0
    steps = [e for e in _events(out) if "d_loss" in e]
    assert [e["step"] for e in steps] == [1, 2] and all(np.isfinite(e["d_loss"]) and np.isfinite(e["adv"]) for e in steps)
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["discriminator_config"]["spectral_norm"] is False and ckpt["train_config"]["gan"]["loss"] == "wgan-gp"
