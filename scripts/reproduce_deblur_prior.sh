#!/usr/bin/env bash
# Reproduce models/deblur_prior_*: the plug-and-play deblurring prior. The main denoiser's weights
# (models/denoise_qat.pt) fine-tuned on what the board's HQS loop hands its prior (train/pnp_prior.py,
# --task pnp-prior): random kernels (camera shake, linear motion, defocus, Gaussian, up to 31 px),
# 0.5-4/255 noise, the data step of a random iteration of a 3-6 iteration schedule, later iterations
# made with the model being trained as the prior; then QAT on the same inputs, export, the parity
# ladder, and the deconvolution evaluation (Levin and 12-kernel sets, 1% noise, Set14 and the
# held-out slice of CBSD432; the GoPro pairs blind) against the main denoiser as the prior.
# Every stage resumes if rerun; FLOAT_TIMEOUT / QAT_TIMEOUT (seconds, 0: none) end a stage early,
# keeping its best checkpoint so far. ONLY_TRAIN=1 stops after QAT. The shipped files: both stages
# on 2 CPU cores (float about 1 step/s at batch 8 of 128x128, the in-loop prior passes included).
set -euo pipefail
DATA=${DATA:-../shared/datasets/CBSD432}
VAL=${VAL:-../shared/datasets/Set14}
KERNELS=${KERNELS:-../shared/datasets/blur_kernels}
PAIRS=${PAIRS:-../shared/datasets/gopro_pairs}
RUNS=${RUNS:-runs}
OUT=${OUT_MODELS:-models}
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
FLOAT_STEPS=${FLOAT_STEPS:-1600}
QAT_STEPS=${QAT_STEPS:-400}
FLOAT_TIMEOUT=${FLOAT_TIMEOUT:-0}
QAT_TIMEOUT=${QAT_TIMEOUT:-0}

. "$(dirname "$0")/run_stage.sh"  # run_stage LIMIT COMMAND...

run_stage "$FLOAT_TIMEOUT" $PY -m train --task pnp-prior --init-from models/denoise_qat.pt --data "$DATA" \
    --steps "$FLOAT_STEPS" --batch 8 --patch 128 --lr 2e-4 --warmup 100 --val-every 500 --ckpt-every 100 \
    --seed 41 --device "$DEVICE" --out "$RUNS/pnp-prior"
# QAT from last.pt: the shipped run's validation scored first-iteration inputs, not whole
# deconvolutions (models/deblur_prior.md); training now validates those
run_stage "$QAT_TIMEOUT" $PY -m train --task pnp-prior --qat --init-from "$RUNS/pnp-prior/last.pt" --data "$DATA" \
    --steps "$QAT_STEPS" --batch 8 --patch 128 --lr 5e-5 --warmup 50 --val-every 150 --ckpt-every 50 \
    --calib-percentile 99.99 --distill 1 --seed 42 --device "$DEVICE" --out "$RUNS/pnp-prior-qat"
[ "${ONLY_TRAIN:-0}" = 1 ] && exit 0
$PY -m export "$RUNS/pnp-prior-qat/best.pt" --out "$OUT" --name deblur_prior --tile 256 --overlap 16
$PY -m export.verify "$OUT/deblur_prior_qat.pt" "$OUT" --name deblur_prior --images "$VAL" --count 8
$PY -m train.evaluate --clean "$VAL" --degradation "motion:$KERNELS/levin09_npy" \
    --degradation "motion:$KERNELS/kernels12_npy" --methods identity,wiener,rl,pnp \
    --pnp-denoiser "$OUT/denoise_int8.tflite" --pnp-denoiser "$OUT/deblur_prior_float.onnx" \
    --pnp-denoiser "$OUT/deblur_prior_int8.tflite" --out "$RUNS/eval/deblur-prior-set14" --overwrite
$PY -m train.evaluate --clean "$DATA" --held-out --degradation "motion:$KERNELS/levin09_npy" \
    --degradation "motion:$KERNELS/kernels12_npy" --methods identity,wiener,rl,pnp \
    --pnp-denoiser "$OUT/denoise_int8.tflite" --pnp-denoiser "$OUT/deblur_prior_float.onnx" \
    --pnp-denoiser "$OUT/deblur_prior_int8.tflite" --out "$RUNS/eval/deblur-prior-heldout" --overwrite
$PY -m train.evaluate --clean "$PAIRS/sharp" --degradation "paired:$PAIRS/blur" --methods identity,pnp-est \
    --pnp-denoiser "$OUT/denoise_int8.tflite" --pnp-denoiser "$OUT/deblur_prior_int8.tflite" \
    --out "$RUNS/eval/deblur-prior-gopro" --overwrite
