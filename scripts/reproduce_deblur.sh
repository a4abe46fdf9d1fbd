#!/usr/bin/env bash
# The learned deblur model is withdrawn (models/deblur.md): plug-and-play deconvolution with the
# denoiser replaced it. This script stays to reproduce the comparison.
# Reproduce models/deblur_*: blind deblurring (camera shake, defocus, Gaussian blur + mild noise),
# fine-tuned from the float small denoiser, QAT, export, evaluation on the Levin and 12-kernel sets
# (+1% noise, against Wiener and Richardson-Lucy given the true kernel) and on real GoPro pairs.
# Needs $RUNS/denoise/best.pt from scripts/reproduce_denoise.sh (or INIT=). KERNELS: a folder with
# levin09_npy/ and kernels12_npy/; PAIRS: a folder with blur/ and sharp/ images of the same names.
# Every step resumes if rerun after an interruption. CPU budget: about 1 h + 15 min QAT on 2 cores.
set -euo pipefail
DATA=${DATA:-../shared/datasets/CBSD432}
VAL=${VAL:-../shared/datasets/Set14}
KERNELS=${KERNELS:-../shared/datasets/blur_kernels}
PAIRS=${PAIRS:-../shared/datasets/gopro_pairs}
RUNS=${RUNS:-runs}
OUT=${OUT:-models}
PY=${PY:-.venv/bin/python}
INIT=${INIT:-$RUNS/denoise/best.pt}
[ -f "$INIT" ] || { echo "needs the float small denoiser $INIT: run scripts/reproduce_denoise.sh first (or set INIT=)" >&2; exit 1; }

$PY -m train --task deblur --init-from "$INIT" --data "$DATA" --val "$VAL" --steps 2000 --batch 16 --patch 96 \
    --lr 1e-3 --warmup 200 --freq-loss 0.05 --val-every 500 --threads 1 --out "$RUNS/deblur"
$PY -m train --task deblur --qat --init-from "$RUNS/deblur/best.pt" --data "$DATA" --val "$VAL" --steps 400 \
    --batch 8 --patch 96 --lr 5e-5 --warmup 20 --freq-loss 0.05 --val-every 200 --threads 1 --calib-percentile 99.99 \
    --out "$RUNS/deblur-qat"
$PY -m export "$RUNS/deblur-qat/best.pt" --out "$OUT" --name deblur --tile 256 --overlap 32
$PY -m train.evaluate --clean "$VAL" --degradation "motion:$KERNELS/levin09_npy" \
    --degradation "motion:$KERNELS/kernels12_npy" --methods identity,wiener,rl --model "$RUNS/deblur/best.pt" \
    --model "$OUT/deblur_float.onnx" --model "$OUT/deblur_int8.tflite" --out "$RUNS/eval-deblur/kernels" --overwrite
$PY -m train.evaluate --clean "$PAIRS/sharp" --degradation "paired:$PAIRS/blur" --model "$RUNS/deblur/best.pt" \
    --model "$OUT/deblur_int8.tflite" --out "$RUNS/eval-deblur/gopro" --overwrite
