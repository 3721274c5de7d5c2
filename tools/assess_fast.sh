#!/usr/bin/env bash
# Issue 4's figures for a fast candidate (a noise-map U-Net back from a GPU stage): its int8
# calibration (as the shipped models'), BSD68 PSNR in eager fp32 with sigma given and estimated,
# the int8 path on all of BSD68, and the must-show benchmark's 8 images against the reference in
# `folded` and `int8`. It prints figures; promoting a model to `default` is a person's call.
#   bash tools/assess_fast.sh runs/fastnm/g1444_mse/best_fp16.safetensors [more candidates]
set -euo pipefail
data=${DATA:-../shared/data}
images=${TRAIN_IMAGES:-"$data/BSDS500/train $data/BSDS500/test"}
methods=reference
for w in "$@"; do
  cal=${w%.safetensors}_int8
  # shellcheck disable=SC2086
  [ -e "$cal.safetensors" ] || deepdenoise calibrate --model "$w" --data $images -o "$cal"
  for blind in "" --blind; do
    deepdenoise evaluate --model "$cal.safetensors" --dataset "$data/BSD68" --sigma 15 25 50 $blind
  done
  deepdenoise evaluate --model "$cal.safetensors" --dataset "$data/BSD68" --sigma 25 --backend int8
  methods="$methods,$cal.safetensors"
done
deepdenoise benchmark --dataset "$data/BSD68" --sigma 25 --limit 8 --methods "$methods" --backend folded,int8
