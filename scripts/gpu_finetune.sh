#!/usr/bin/env bash
# Second stage on a lent GPU: continue the blind models from their first-stage weights
# (init_from, fresh optimizer, cosine lr from 2e-4) for a time budget.
set -euo pipefail
out=${1:?OUTDIR}; minutes=${2:-9}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
mkdir -p data runs "$out"
[ -e data/BSDS500 ] || ln -s "$PWD/.carry/BSDS500" data/BSDS500
python3 -m deepdenoise prepare data/BSDS500 --out data/patches > "$out/prepare.log" 2>&1
python3 -m deepdenoise prepare data/BSDS500 --out data/patches --color >> "$out/prepare.log" 2>&1
python3 - <<'PY'
import yaml
for name, init in (("default", ".carry/init/best_fp16.safetensors"), ("default_color", ".carry/init/color_best_fp16.safetensors")):
    cfg = yaml.safe_load(open(f"configs/{name}.yaml"))
    cfg.update(init_from=init, lr=float(__import__("os").environ.get("FT_LR", "2e-4")), out=f"runs/{name}_ft")
    yaml.safe_dump(cfg, open(f"runs/{name}_ft.yaml", "w"), sort_keys=False)
PY
for run in default default_color; do
  python3 -m deepdenoise train --config runs/${run}_ft.yaml --max-minutes "$minutes" --quiet > "$out/${run}_ft.log" 2>&1 &
done
wait
for run in default_ft default_color_ft; do
  tail -n 2 "$out/$run.log"
  python3 - "$run" <<'PY'
import sys
from pathlib import Path
from deepdenoise.hub import load_weights, save_weights
run = Path("runs") / sys.argv[1]
model, meta = load_weights(run / "best.safetensors")
extra = {k: v for k, v in meta.items() if k not in ("format_version", "architecture", "config", "dtype")}
save_weights(model, run / "best_fp16", extra, half=True)
PY
  tar czf "$out/$run.tgz" runs/$run/best_fp16.* runs/$run/log.csv runs/$run/config.yaml
done
