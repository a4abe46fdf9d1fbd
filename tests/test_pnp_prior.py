"""Training inputs for a plug-and-play prior (train/pnp_prior.py) and a tiny pnp-prior training run."""

import numpy as np
import pytest

from edge_runtime.metrics import psnr
from train.degradations import DegradationConfig, degrade
from train.pnp_prior import PNP_KERNEL_MAX, pnp_batch, random_pnp_kernel

CFG = DegradationConfig(task="pnp-prior")


@pytest.fixture(scope="module")
def patch():
    data = pytest.importorskip("skimage.data")
    return data.astronaut()[120:184, 180:244].astype(np.float32) / 255


def test_random_kernels_are_normalised_and_fit_the_cap():
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = random_pnp_kernel(rng)
        assert k.ndim == 2 and max(k.shape) <= PNP_KERNEL_MAX and k.min() >= 0
        assert abs(k.sum() - 1) < 1e-9


def test_first_iteration_inputs_are_8_bit_reproducible_and_blurred(patch):
    clean = np.stack([patch] * 6)
    a = pnp_batch(clean, CFG, np.random.default_rng(3))
    b = pnp_batch(clean, CFG, np.random.default_rng(3))
    assert a.shape == clean.shape and a.dtype == np.float32 and np.array_equal(a, b)
    assert np.array_equal(np.round(a * 255), a * 255) and a.min() >= 0 and a.max() <= 1
    scores = [psnr(x, patch) for x in a]
    assert 15 < np.mean(scores) < 40  # degraded, not clean, not garbage
    # degrade() makes the same first-iteration input for one image (validation pairs use it)
    one = degrade(patch, CFG, np.random.default_rng(5))
    assert one.shape == patch.shape and np.array_equal(np.round(one * 255), one * 255)


def test_later_iterations_run_the_prior_and_start_from_its_output(patch):
    """With a prior that knows the answer, later-iteration inputs are far cleaner than the first:
    the data step starts from the prior's output, as the board's HQS loop does."""
    clean = np.stack([patch] * 12)
    calls = []

    def oracle(stack: np.ndarray) -> np.ndarray:
        calls.append(stack.shape)
        assert np.array_equal(np.round(stack * 255), stack * 255)  # the prior reads 8-bit pixels
        return np.repeat(np.round(patch[None] * 255) / 255, len(stack), axis=0)

    first = pnp_batch(clean, CFG, np.random.default_rng(7))
    later = pnp_batch(clean, CFG, np.random.default_rng(7), prior=oracle)
    assert calls and all(s[1:] == patch.shape for s in calls)
    gains = [psnr(l, patch) - psnr(f, patch) for f, l in zip(first, later)]
    moved = [g for g in gains if g != 0]  # samples stopped at iteration 1 are unchanged
    assert len(moved) >= 4 and min(moved) > 3.0


@pytest.mark.slow
def test_pnp_prior_training_runs_the_model_in_the_loop(tmp_path):
    from edge_runtime.contract import ModelContract
    from train.checkpoint import load_checkpoint
    from train.cli import main as train_main

    args = ["--preset", "tiny", "--patch", "32", "--batch", "4", "--threads", "1", "--task", "pnp-prior",
            "--steps", "6", "--val-every", "6", "--out", str(tmp_path / "run")]
    assert train_main(args) == 0
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["step"] == 6 and ModelContract.from_json(ckpt["contract"]).task == "pnp-prior"
    assert train_main([*args[:-2], "--loader-workers", "2", "--out", str(tmp_path / "bad")]) == 1


def test_validation_scores_whole_deconvolutions(patch):
    """pnp-prior runs are validated on what the board returns (the last data step after the last
    prior step), so a better prior scores higher: an oracle beats doing nothing by far."""
    from train.pnp_prior import pnp_validation_psnr

    def oracle(stack):
        return np.repeat(np.round(patch[None] * 255) / 255, len(stack), axis=0)

    cleans = [patch, patch]
    nothing = pnp_validation_psnr(lambda s: s, cleans, CFG)
    assert pnp_validation_psnr(lambda s: s, cleans, CFG) == nothing  # seeded: the same blurs every time
    assert pnp_validation_psnr(oracle, cleans, CFG) > nothing + 5.0


def test_schedule_sweep_scores_a_training_checkpoint_like_its_int8_export(capsys):
    """scripts/pnp_schedule_sweep.py --model takes a .pt (float torch through model_prior) as well
    as the exported file; on the same crops the two land within a few tenths of a dB, above Wiener."""
    import re
    from pathlib import Path

    from script_module import load_script

    root = Path(__file__).resolve().parents[1]
    shared = root.parent / "shared" / "datasets"
    if not (shared / "Set5").is_dir() or not (shared / "blur_kernels" / "levin09_npy").is_dir():
        pytest.skip("needs ../shared/datasets/Set5 and blur_kernels (not in a fresh clone)")
    sweep = load_script("pnp_schedule_sweep")
    scores = {}
    for model in ("deblur_prior_qat.pt", "deblur_prior_int8.tflite"):
        assert sweep.main(["--model", str(root / "models" / model), "--data", str(shared / "Set5"), "--images", "2", "--crop", "96",
                           "--iterations", "2", "--relax-sigmas", "5", "--start-sigmas", "25",
                           "--kernel-sets", "levin09_npy"]) == 0
        out = capsys.readouterr().out
        wiener = float(re.search(r"wiener .*?(\d+\.\d+) dB", out).group(1))
        scores[model] = float(re.search(r"pnp it=2 .*?(\d+\.\d+) dB", out).group(1))
        assert scores[model] > wiener
    assert abs(scores["deblur_prior_qat.pt"] - scores["deblur_prior_int8.tflite"]) < 0.3


def test_schedule_sweep_scene_blur_is_the_photo_blurred_then_cropped():
    """--scene blurs each crop from the photo around it: the same pixels as blurring the whole
    photo (its edge reflected, as train.degradations.blur does) and cutting the crop out after,
    also for a crop that touches the photo's edge."""
    from script_module import load_script

    from edge_runtime.kernels import linear_motion_kernel
    from train.degradations import blur

    sweep = load_script("pnp_schedule_sweep")
    photo = np.random.default_rng(3).random((70, 90, 3)).astype(np.float32)
    k = linear_motion_kernel(9, 30).astype(np.float32)
    whole = blur(photo, k)
    for y0, x0 in ((20, 30), (0, 0), (70 - 32, 90 - 32)):
        np.testing.assert_allclose(sweep.scene_blur(photo, k, y0, x0, 32), whole[y0 : y0 + 32, x0 : x0 + 32], atol=1e-5)
