#!/usr/bin/env bash
# Reproduce models/denoise_* from scratch: float training, QAT, export, parity ladder, evaluation.
# DATA: folder of clean colour photos (we used CBSD432); VAL: validation photos (Set14).
# Every step resumes if rerun after an interruption. CPU budget: about 1.5 hours on 2 cores.
set -euo pipefail
DATA=${DATA:-../shared/datasets/CBSD432}
VAL=${VAL:-../shared/datasets/Set14}
RUNS=${RUNS:-runs}
OUT=${OUT:-models}
PY=${PY:-.venv/bin/python}

$PY -m train --task denoise --data "$DATA" --val "$VAL" --preset small --steps 9000 --batch 16 --patch 64 \
    --lr 2e-3 --threads 1 --out "$RUNS/denoise"
$PY -m train --task denoise --qat --init-from "$RUNS/denoise/best.pt" --data "$DATA" --val "$VAL" --steps 1000 \
    --batch 16 --patch 64 --lr 1e-4 --warmup 50 --val-every 250 --threads 1 --calib-percentile 99.99 --out "$RUNS/denoise-qat"
$PY -m export "$RUNS/denoise-qat/best.pt" --out "$OUT" --name denoise --tile 256 --overlap 16 --ptq --ptq-data "$DATA"
$PY -m export.verify "$OUT/denoise_qat.pt" "$OUT" --name denoise --images "$VAL" --count 8
for set in "$VAL" "$DATA --held-out"; do
  # shellcheck disable=SC2086
  $PY -m train.evaluate --clean $set --degradation awgn:15 --degradation awgn:25 --degradation awgn:50 \
      --methods identity,nlm-opencv,nlm-skimage,wavelet --model "$RUNS/denoise/best.pt" --model "$OUT/denoise_float.onnx" \
      --model "$OUT/denoise_int8.tflite" --model "$OUT/denoise_int8_ptq.tflite" --out "$RUNS/eval/$(basename ${set%% *})"
done
