#!/usr/bin/env bash
# Train the shipped models on a lent GPU machine (no install there: PYTHONPATH=src).
# Usage (from the repo root, with the 500 BSDS500 JPEGs copied to .carry/BSDS500):
#   bash scripts/gpu_train.sh OUTDIR [extra minutes per blind model, default 7]
set -euo pipefail
out=${1:?OUTDIR}
minutes=${2:-7}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p data runs "$out"
[ -e data/BSDS500 ] || ln -s "$PWD/.carry/BSDS500" data/BSDS500
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m deepdenoise prepare data/BSDS500 --out data/patches > "$out/prepare.log" 2>&1
python3 -m deepdenoise prepare data/BSDS500 --out data/patches --color >> "$out/prepare.log" 2>&1
tail -n 2 "$out/prepare.log"
resume_or_config() {  # $1 config name
  if [ -f "runs/$1/checkpoint.json" ]; then echo "--resume runs/$1"; else echo "--config configs/$1.yaml"; fi
}
python3 -m deepdenoise train $(resume_or_config dncnn_s_sigma25) --max-minutes 8.5 --quiet > "$out/dncnn_s_sigma25.log" 2>&1 &
python3 -m deepdenoise train $(resume_or_config default) --max-minutes "$minutes" --quiet > "$out/default.log" 2>&1 &
python3 -m deepdenoise train $(resume_or_config default_color) --max-minutes "$minutes" --quiet > "$out/default_color.log" 2>&1 &
wait
for run in dncnn_s_sigma25 default default_color; do
  tail -n 3 "$out/$run.log"
  python3 - "$run" <<'PY'
import sys
from pathlib import Path
from deepdenoise.hub import load_weights, read_meta, save_weights
run = Path("runs") / sys.argv[1]
model, meta = load_weights(run / "best.safetensors")
extra = {k: v for k, v in meta.items() if k not in ("format_version", "architecture", "config", "dtype")}
save_weights(model, run / "best_fp16", extra, half=True)
PY
  files="runs/$run/best_fp16.safetensors runs/$run/best_fp16.json runs/$run/log.csv runs/$run/config.yaml"
  [ "$run" = dncnn_s_sigma25 ] && files="$files runs/$run/checkpoint.json $(ls runs/$run/checkpoint-*.safetensors)"
  tar czf "$out/$run.tgz" $files
done
ls -la "$out"
