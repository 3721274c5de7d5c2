#!/usr/bin/env bash
# Train recipes on a lent GPU machine (nothing installed there: PYTHONPATH=src), several at once.
# The 500 BSDS500 JPEGs must be copied to .carry/BSDS500/{train,val,test} (an ignored folder named
# in the device tool's carry); gray-only chains can carry .carry/test_crops.npy (and .carry/val4096.npy, the
# first 4096 test patches) from `deepdenoise prepare` instead of preparing patches there. Each argument is a list of configs run one after another (a chain of
# stages); the arguments run concurrently. The fp16 weights, logs and configs come back in OUTDIR.
#   bash tools/gpu_train.sh OUTDIR "dncnn_s_sigma25" "default default_ft default_ft2" \
#        "default_color default_color_ft default_color_ft2"
# The device tool moves at most 64 MiB (tracked files + carry): with the train and test JPEGs
# (29 MB) carried, move shipped weights a gray run does not need (default*.safetensors) out of the
# tree for the call and back after it. Outputs: one .tgz per stage (the tool returns 8 files), or
# with PICK_DATASET=.carry/BSD68 (carried) the best PICK_KEEP candidates by PSNR there
# (tools/gpu_pick.py), for candidates too large to all come back.
set -euo pipefail
out=${1:?OUTDIR}; shift
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
# Each run's CPU side (crops, noise) is small; with one OpenMP thread per core in every concurrent
# run, those threads spin against each other and a step took 2 s instead of 15 ms (192x192 crops).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p data runs "$out"
[ -e data/BSDS500 ] || ln -s "$PWD/.carry/BSDS500" data/BSDS500
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
if [ -e .carry/test_crops.npy ]; then  # gray runs only need the validation set: skip prepare
  mkdir -p data/patches && ln -sf "$PWD/.carry/test_crops.npy" data/patches/test_crops.npy
  if [ -e .carry/val4096.npy ]; then ln -sf "$PWD/.carry/val4096.npy" data/patches/test.npy; fi
else
  python3 -m deepdenoise prepare data/BSDS500 --out data/patches > "$out/prepare.log" 2>&1
  python3 -m deepdenoise prepare data/BSDS500 --out data/patches --color >> "$out/prepare.log" 2>&1
fi
chain() {
  for cfg in "$@"; do
    mkdir -p "$(dirname "runs/$cfg.log")"
    # TRAIN_TIMEOUT (seconds) bounds each stage; whatever best weights exist still come back
    timeout "${TRAIN_TIMEOUT:-0}" python3 -m deepdenoise train --config "configs/$cfg.yaml" --quiet \
      > "runs/$cfg.log" 2>&1 || echo "stage $cfg ended with status $?" >> "runs/$cfg.log"
    [ -e "runs/$cfg/best.safetensors" ] || return 1
    python3 - "runs/$cfg" <<'PY'
import sys
from pathlib import Path
from deepdenoise.hub import load_weights, save_weights
run = Path(sys.argv[1])
model, meta = load_weights(run / "best.safetensors")
extra = {k: v for k, v in meta.items() if k not in ("format_version", "architecture", "config", "dtype")}
save_weights(model, run / "best_fp16", extra, half=True)
PY
    [ -n "${PICK_DATASET:-}" ] || tar czf "$out/$(echo "$cfg" | tr / _).tgz" runs/$cfg/best_fp16.* \
      runs/$cfg/log.csv runs/$cfg/config.yaml "runs/$cfg.log"
  done
}
finals=()
for stages in "$@"; do
  # shellcheck disable=SC2086
  chain $stages &
  finals+=("${stages##* }")  # each chain's last stage: its candidate
done
wait
if [ -n "${PICK_DATASET:-}" ]; then
  # Candidates too large to all come back (8 files of at most 16 MiB, 64 MiB in all): score each
  # chain's last stage on PICK_DATASET and return the best ones' fp16 weights in parts, plus
  # every stage's log, config and metadata in one archive.
  tar czf "$out/logs.tgz" runs/fastnm/*.log runs/*/*/log.csv runs/*/*/config.yaml runs/*/*/best_fp16.json 2>/dev/null || true
  python3 tools/gpu_pick.py "$out" "$PICK_DATASET" "${PICK_KEEP:-2}" "${finals[@]}"
fi
ls -la "$out"
