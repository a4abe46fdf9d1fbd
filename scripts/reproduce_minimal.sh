#!/usr/bin/env bash
# Reproduce models/denoise_minimal_* (the Edge-TPU-friendly denoiser: ReLU only, no SE): warm start
# from the float small denoiser, fine-tune, QAT, export, Edge TPU readiness, evaluation.
# Needs $RUNS/denoise/best.pt from scripts/reproduce_denoise.sh (or INIT= another float small checkpoint).
# Every step resumes if rerun after an interruption. CPU budget: about 25 min + 20 min QAT on 2 cores.
set -euo pipefail
DATA=${DATA:-../shared/datasets/CBSD432}
VAL=${VAL:-../shared/datasets/Set14}
RUNS=${RUNS:-runs}
OUT=${OUT:-models}
PY=${PY:-.venv/bin/python}
INIT=${INIT:-$RUNS/denoise/best.pt}
[ -f "$INIT" ] || { echo "needs the float small denoiser $INIT: run scripts/reproduce_denoise.sh first (or set INIT=)" >&2; exit 1; }

$PY -m train --task denoise --preset minimalistic --warm-start "$INIT" --data "$DATA" --val "$VAL" --steps 3000 \
    --batch 16 --patch 64 --lr 5e-4 --warmup 100 --val-every 500 --threads 1 --out "$RUNS/minimal"
$PY -m train --task denoise --qat --init-from "$RUNS/minimal/best.pt" --data "$DATA" --val "$VAL" --steps 1000 \
    --batch 16 --patch 64 --lr 1e-4 --warmup 50 --val-every 250 --threads 1 --out "$RUNS/minimal-qat"
$PY -m export "$RUNS/minimal-qat/best.pt" --out "$OUT" --name denoise_minimal --tile 256 --overlap 16 --ptq --ptq-data "$DATA" --upsample resize
$PY scripts/edgetpu_readiness.py "$OUT/denoise_minimal_int8.tflite"
for set in "$VAL" "$DATA --held-out"; do
  # shellcheck disable=SC2086
  $PY -m train.evaluate --clean $set --degradation awgn:15 --degradation awgn:25 --degradation awgn:50 \
      --methods identity --model "$RUNS/minimal/best.pt" --model "$OUT/denoise_minimal_float.onnx" \
      --model "$OUT/denoise_minimal_int8.tflite" --model "$OUT/denoise_minimal_int8_ptq.tflite" \
      --model "$OUT/denoise_int8.tflite" --out "$RUNS/eval-minimal/$(basename ${set%% *})"
done
