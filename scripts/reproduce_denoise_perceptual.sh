#!/usr/bin/env bash
# Reproduce models/denoise_perceptual_*: the main denoiser fine-tuned adversarially for a less
# waxy look (train/gan.py), then QAT distilled towards that float GAN model, export, parity ladder
# and the perceptual evaluation (NIQE/BRISQUE beside PSNR) against the shipped PSNR models.
# GAN: from models/denoise_qat.pt's weights on the main model's degradations (blind AWGN 0-50,
# 30% Poisson-Gaussian), relativistic loss against a spectral-norm patch discriminator, adversarial
# weight 0.05, feature matching 0.05; best.pt is the EMA generator with the lowest held-out NIQE
# within 1 dB of the start's PSNR. (Starting from denoise_real instead lowered held-out NIQE but
# raised NIQE/BRISQUE on real_noise_dev: models/denoise_perceptual.md.) QAT weights the
# teacher (the GAN model) 10x the clean target so that the int8 model keeps the GAN's texture
# rather than drifting back to the PSNR look. Every stage resumes if rerun; GAN_TIMEOUT /
# QAT_TIMEOUT (seconds, 0: none) end a stage early, keeping its best checkpoint so far.
# The shipped files: both stages on 2 CPU cores (GAN 1.5 steps/s at batch 8 of 96x96).
set -euo pipefail
DATA=${DATA:-../shared/datasets/CBSD432}
REAL=${REAL:-../shared/datasets/real_noise_dev}
VAL=${VAL:-../shared/datasets/Set14}
RUNS=${RUNS:-runs}
OUT=${OUT_MODELS:-models}
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
GAN_STEPS=${GAN_STEPS:-2000}
QAT_STEPS=${QAT_STEPS:-600}
GAN_TIMEOUT=${GAN_TIMEOUT:-0}
QAT_TIMEOUT=${QAT_TIMEOUT:-0}

. "$(dirname "$0")/run_stage.sh"  # run_stage LIMIT COMMAND...

run_stage "$GAN_TIMEOUT" $PY -m train --gan --init-from models/denoise_qat.pt --data "$DATA" --val "$VAL" --sigma 0 50 --poisson-prob 0.3 \
    --steps "$GAN_STEPS" --batch 8 --patch 96 --lr 1e-4 --d-lr 2e-4 --adv-weight 0.05 \
    --val-every 250 --ckpt-every 100 --seed 31 --device "$DEVICE" --out "$RUNS/denoise-perceptual-gan"
run_stage "$QAT_TIMEOUT" $PY -m train --task denoise --qat --init-from "$RUNS/denoise-perceptual-gan/best.pt" --data "$DATA" \
    --val "$VAL" --sigma 0 50 --poisson-prob 0.3 --steps "$QAT_STEPS" --batch 8 --patch 96 --lr 5e-5 --warmup 50 --val-every 150 --ckpt-every 50 \
    --calib-percentile 99.9 --residual-step 1 --distill 10 --seed 32 --device "$DEVICE" --out "$RUNS/denoise-perceptual-qat"
[ "${ONLY_TRAIN:-0}" = 1 ] && exit 0
$PY -m export "$RUNS/denoise-perceptual-qat/best.pt" --out "$OUT" --name denoise_perceptual --tile 256 --overlap 16
$PY -m export.verify "$OUT/denoise_perceptual_qat.pt" "$OUT" --name denoise_perceptual --images "$VAL" --count 8
for spec in "awgn:25 $VAL set14" "pairs:_real,_mean $REAL real"; do
  read -r degradation clean name <<< "$spec"
  $PY -m train.evaluate --clean "$clean" --degradation "$degradation" --methods identity --perceptual \
      --model "$OUT/denoise_int8.tflite" --model "$OUT/denoise_real_int8.tflite" --model "$RUNS/denoise-perceptual-gan/best.pt" \
      --model "$OUT/denoise_perceptual_float.onnx" --model "$OUT/denoise_perceptual_int8.tflite" \
      --out "$RUNS/eval/perceptual-$name" --overwrite
done
