#!/usr/bin/env bash
# Train the configs named on the command line one after another, each resumed from its checkpoint
# when one exists and skipped when its run has finished. For long CPU runs:
#   nohup nice -n 19 bash tools/train_queue.sh configs/nm/a.yaml configs/nm/b.yaml > runs/queue.out 2>&1 &
set -u
cd "$(dirname "$0")/.."
for cfg in "$@"; do
  out=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['out'])" "$cfg")
  if [ -f "$out/summary.json" ] && python -c "import json, sys; s = json.load(open(sys.argv[1])); sys.exit(0 if not s['interrupted'] else 1)" "$out/summary.json"; then
    echo "== $cfg: finished ($out/summary.json)"; continue
  fi
  if [ -f "$out/checkpoint.json" ]; then
    echo "== $cfg: resuming $out"; deepdenoise train --resume "$out" --quiet || exit $?
  else
    echo "== $cfg: starting $out"; deepdenoise train --config "$cfg" --quiet || exit $?
  fi
done
