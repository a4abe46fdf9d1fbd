#!/usr/bin/env bash
# Reproduce models/denoise_* from scratch: float training of the small preset, then of the fast
# preset warm-started from it, a second and a third cosine cycle at larger patches, QAT distilled
# towards the float model, export, parity ladder, evaluation.
# DATA: folder of clean colour photos (we used CBSD432); VAL: validation photos (Set14).
# Every step resumes if rerun after an interruption. CPU budget: about 4 hours on 2 cores.
set -euo pipefail
DATA=${DATA:-../shared/datasets/CBSD432}
VAL=${VAL:-../shared/datasets/Set14}
RUNS=${RUNS:-runs}
OUT=${OUT:-models}
PY=${PY:-.venv/bin/python}

$PY -m train --task denoise --data "$DATA" --val "$VAL" --preset small --steps 9000 --batch 16 --patch 64 \
    --lr 2e-3 --threads 1 --out "$RUNS/denoise"
# The fast preset (no full-resolution blocks, a fourth level) starts from the small float weights
# it shares; its new blocks start as identities.
$PY -m train --task denoise --data "$DATA" --val "$VAL" --preset fast --warm-start "$RUNS/denoise/best.pt" \
    --steps 10000 --batch 10 --patch 128 --lr 1e-3 --warmup 200 --threads 2 --out "$RUNS/denoise-fast"
# A second cosine cycle from those weights, at 160 px patches (the 1/8 level sees more context).
$PY -m train --task denoise --init-from "$RUNS/denoise-fast/best.pt" --data "$DATA" --val "$VAL" --steps 6000 \
    --batch 7 --patch 160 --lr 4e-4 --warmup 200 --threads 2 --seed 7 --out "$RUNS/denoise-fast2"
# A third, lower cycle: +0.03 dB validation, enough to carry the INT8 model over its speed/quality targets.
$PY -m train --task denoise --init-from "$RUNS/denoise-fast2/best.pt" --data "$DATA" --val "$VAL" --steps 6000 \
    --batch 7 --patch 160 --lr 3e-4 --warmup 200 --val-every 1000 --threads 2 --seed 11 --out "$RUNS/denoise-fast3"
$PY -m train --task denoise --qat --init-from "$RUNS/denoise-fast3/best.pt" --data "$DATA" --val "$VAL" --steps 1000 \
    --batch 8 --patch 128 --lr 5e-5 --warmup 50 --val-every 250 --threads 2 --calib-percentile 99.99 --distill 1 \
    --out "$RUNS/denoise-fast3-qat"
$PY -m export "$RUNS/denoise-fast3-qat/best.pt" --out "$OUT" --name denoise --tile 256 --overlap 16 --ptq --ptq-data "$DATA"
$PY -m export.verify "$OUT/denoise_qat.pt" "$OUT" --name denoise --images "$VAL" --count 8
for set in "$VAL" "$DATA --held-out"; do
  # shellcheck disable=SC2086
  $PY -m train.evaluate --clean $set --degradation awgn:15 --degradation awgn:25 --degradation awgn:50 \
      --methods identity,nlm-opencv,nlm-skimage,wavelet --model "$RUNS/denoise-fast3/best.pt" --model "$OUT/denoise_float.onnx" \
      --model "$OUT/denoise_int8.tflite" --model "$OUT/denoise_int8_ptq.tflite" --out "$RUNS/eval/$(basename ${set%% *})" --overwrite
done
