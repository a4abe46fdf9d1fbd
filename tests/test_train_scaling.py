"""Training at scale: torchrun data parallelism (gloo on CPU), mixed precision and gradient checkpointing."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edge_runtime.contract import ModelContract
from train.checkpoint import load_checkpoint, load_restorer
from train.cli import main as train_main
from train.data import PatchConfig, PatchSampler
from train.degradations import DegradationConfig
from train.losses import restoration_loss
from train.model import Restorer, preset
from train.quant import freeze_ranges, set_quant_mode
from train.train import Distributed, batch_index

ROOT = Path(__file__).resolve().parent.parent
DDP_ARGS = ["--preset", "tiny", "--patch", "32", "--batch", "4", "--sigma", "25", "25", "--poisson-prob", "0",
            "--threads", "1", "--warmup", "2", "--log-every", "5", "--val-every", "10", "--ckpt-every", "10",
            "--seed", "5"]


def torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node=N -m train ...` from the repository root, one thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "train", *args]  # --standalone: a free local port, so parallel runs never collide
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


def checksums(text: str) -> dict[int, str]:
    return {int(r): c for r, c in re.findall(r"rank (\d+) of 2: done at step \d+, weights checksum (\S+)", text)}


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    proc = torchrun([*DDP_ARGS, "--steps", "20", "--out", str(out)])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out, proc.stdout + proc.stderr


def test_batches_per_rank_are_disjoint_and_single_process_is_unchanged():
    assert [batch_index(s, Distributed()) for s in range(3)] == [0, 1, 2]
    two = [batch_index(s, Distributed(rank=r, world_size=2)) for s in range(3) for r in range(2)]
    assert two == list(range(6))  # ranks never share a batch; together they cover every key once


@pytest.mark.slow
def test_torchrun_two_processes_train_one_model(ddp_run):
    out, output = ddp_run
    # both processes ran and trained: one start line and one end line each, the same weights at the end
    assert "rank 0 of 2 (gloo on cpu): trains on batches step * 2 + 0" in output
    assert "rank 1 of 2 (gloo on cpu): trains on batches step * 2 + 1" in output
    sums = checksums(output)
    assert sorted(sums) == [0, 1] and sums[0] == sums[1]
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["step"] == 20 and ckpt["train_config"]["world_size"] == 2
    model, best = load_restorer(out / "best.pt")
    assert best["step"] in (10, 20)
    torch.manual_seed(5)  # the seeded initialisation every rank started from
    init = Restorer(preset("tiny")).state_dict()
    assert any(not torch.equal(init[k], v) for k, v in ckpt["model"].items() if v.is_floating_point())
    contract = ModelContract.from_json(ckpt["contract"])
    assert contract.task == "denoise" and contract.recipe["world_size"] == 2
    # rank 0 alone logged: one metrics line per logged step, no duplicates from rank 1
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 10, 15, 20, 20]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr,mpix_per_s,val_psnr_dead-leaves" and len(rows) == 5
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "metrics.csv", "metrics.jsonl"]


@pytest.mark.slow
def test_torchrun_resumes_from_the_last_checkpoint(ddp_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ddp_run[0], run)
    proc = torchrun([*DDP_ARGS, "--steps", "24", "--ckpt-every", "2", "--out", str(run)])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert f"resumed from {run / 'last.pt'} at step 20" in output
    sums = checksums(output)
    assert sorted(sums) == [0, 1] and sums[0] == sums[1]
    assert load_checkpoint(run / "last.pt")["step"] == 24
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows.count(rows[0]) == 1 and rows[-1].startswith("24,")  # appended under the one header


def _batch(seed: int = 0):
    sampler = PatchSampler([], DegradationConfig(sigma_min=25, sigma_max=25, poisson_prob=0.0),
                           PatchConfig(patch=32, batch=2, seed=seed))
    return (torch.from_numpy(a) for a in sampler.batch(0))


def _loss_and_grads(model: Restorer, degraded, clean):
    model.zero_grad(set_to_none=True)
    loss = restoration_loss(model(degraded), clean)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("qat", [False, True])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(qat, monkeypatch):
    degraded, clean = _batch()
    torch.manual_seed(0)
    model = Restorer(preset("tiny")).train()
    if qat:  # frozen ranges: fake-quant in the recomputed forward is the same function
        set_quant_mode(model, "observe")
        with torch.no_grad():
            model(degraded)
        freeze_ranges(model)
        set_quant_mode(model, "quant")
    plain_loss, plain_grads = _loss_and_grads(model, degraded, clean)
    import train.model as model_module

    calls = []
    real = model_module.checkpoint
    monkeypatch.setattr(model_module, "checkpoint", lambda *a, **k: calls.append(k) or real(*a, **k))
    model.grad_checkpoint = True
    ckpt_loss, ckpt_grads = _loss_and_grads(model, degraded, clean)
    assert len(calls) == 2 * model.cfg.depth + 1 and all(k == {"use_reentrant": False} for k in calls)
    assert torch.allclose(ckpt_loss, plain_loss, rtol=0, atol=1e-7)
    for name, g in plain_grads.items():
        assert torch.allclose(ckpt_grads[name], g, rtol=1e-5, atol=1e-8), name
    calls.clear()
    with torch.no_grad():  # inference never checkpoints
        model(degraded)
    model.eval()
    model(degraded)
    assert calls == []


def test_gradient_checkpointing_is_off_in_observe_mode():
    batches = [list(_batch(seed)) for seed in (1, 2)]
    models = []
    for flag in (False, True):
        torch.manual_seed(0)
        m = Restorer(preset("tiny")).train()
        m.grad_checkpoint = flag
        set_quant_mode(m, "observe")
        for degraded, clean in batches:  # a recomputed forward would observe each batch twice
            restoration_loss(m(degraded), clean).backward()
        models.append(m)
    ranges = [{k: v for k, v in m.state_dict().items() if k.endswith((".lo", ".hi"))} for m in models]
    assert ranges[0] and all(torch.equal(ranges[0][k], ranges[1][k]) for k in ranges[0])


TINY = ["--preset", "tiny", "--patch", "32", "--batch", "2", "--sigma", "25", "25", "--poisson-prob", "0",
        "--threads", "1", "--warmup", "1", "--val-every", "1000", "--log-every", "2"]


@pytest.mark.slow
def test_amp_and_grad_checkpoint_train_on_cpu(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="train.train"):
        assert train_main([*TINY, "--steps", "4", "--amp", "--grad-checkpoint", "--out", str(tmp_path / "amp")]) == 0
    assert "--amp on CPU" in caplog.text
    ckpt = load_checkpoint(tmp_path / "amp" / "last.pt")
    assert ckpt["step"] == 4 and ckpt["train_config"]["amp"] and ckpt["train_config"]["grad_checkpoint"]
    assert "amp_scaler" not in ckpt  # bfloat16 needs no loss scaling
    assert all(v.dtype == torch.float32 for k, v in ckpt["model"].items() if v.is_floating_point())
    losses = [json.loads(line)["loss"] for line in (tmp_path / "amp" / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert len(losses) == 2 and all(0 < loss < 1 for loss in losses)


def test_amp_is_refused_with_qat(tmp_path, capsys):
    assert train_main([*TINY, "--steps", "2", "--amp", "--qat", "--init-from", str(tmp_path / "x.pt"),
                       "--out", str(tmp_path / "q")]) == 1
    assert "--amp cannot be combined with --qat" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_amp_on_cuda_uses_float16_with_a_grad_scaler(tmp_path):
    assert train_main([*TINY, "--steps", "4", "--device", "cuda", "--amp", "--out", str(tmp_path)]) == 0
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["step"] == 4 and ckpt["amp_scaler"]["scale"] > 0
    assert train_main([*TINY, "--steps", "6", "--device", "cuda", "--amp", "--out", str(tmp_path)]) == 0
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 6
