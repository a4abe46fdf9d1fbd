#!/usr/bin/env bash
# Reproduce models/denoise_minimal_* (the Edge-TPU-friendly denoiser: the fast network with ReLU
# only, no SE): warm start from the float fast denoiser, fine-tune, QAT, export, Edge TPU
# readiness, evaluation.
# Needs $RUNS/denoise-fast2/best.pt from scripts/reproduce_denoise.sh (or INIT= another float
# checkpoint of the fast preset). Every step resumes if rerun after an interruption.
# CPU budget: about 30 min float + 15 min QAT on 2 cores.
set -euo pipefail
DATA=${DATA:-../shared/datasets/CBSD432}
VAL=${VAL:-../shared/datasets/Set14}
RUNS=${RUNS:-runs}
OUT=${OUT:-models}
PY=${PY:-.venv/bin/python}
INIT=${INIT:-$RUNS/denoise-fast2/best.pt}
[ -f "$INIT" ] || { echo "needs the float fast denoiser $INIT: run scripts/reproduce_denoise.sh first (or set INIT=)" >&2; exit 1; }

# Every weight is copied; only hard-swish becomes ReLU, so the network relearns its activations.
$PY -m train --task denoise --preset fast-minimalistic --warm-start "$INIT" --data "$DATA" --val "$VAL" --steps 4000 \
    --batch 7 --patch 160 --lr 5e-4 --warmup 200 --val-every 500 --threads 2 --seed 7 --out "$RUNS/minimal-fast"
$PY -m train --task denoise --qat --init-from "$RUNS/minimal-fast/best.pt" --data "$DATA" --val "$VAL" --steps 600 \
    --batch 8 --patch 128 --lr 1e-4 --warmup 50 --val-every 200 --threads 2 --calib-percentile 99.99 --distill 1 \
    --out "$RUNS/minimal-fast-qat"
$PY -m export "$RUNS/minimal-fast-qat/best.pt" --out "$OUT" --name denoise_minimal --tile 256 --overlap 16 --ptq --ptq-data "$DATA" --upsample resize
$PY scripts/edgetpu_readiness.py "$OUT/denoise_minimal_int8.tflite"
for set in "$VAL" "$DATA --held-out"; do
  # shellcheck disable=SC2086
  $PY -m train.evaluate --clean $set --degradation awgn:15 --degradation awgn:25 --degradation awgn:50 \
      --methods identity --model "$RUNS/minimal-fast/best.pt" --model "$OUT/denoise_minimal_float.onnx" \
      --model "$OUT/denoise_minimal_int8.tflite" --model "$OUT/denoise_minimal_int8_ptq.tflite" \
      --model "$OUT/denoise_int8.tflite" --out "$RUNS/eval-minimal/$(basename ${set%% *})" --overwrite
done
