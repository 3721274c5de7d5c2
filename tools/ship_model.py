"""Publish a trained run (or a chain of stages) as a shipped model, in half precision.

The weights are the last stage's best checkpoint; the metadata records every stage's command,
steps, training seconds, hardware and validation PSNR (from its log.csv and saved weights), so
`deepdenoise models` can say how the model was made. Measured PSNR is added afterwards by
`deepdenoise evaluate --model NAME ... --json r.json` and `python tools/record_evaluation.py NAME r.json`.

    python tools/ship_model.py fast runs/fast runs/fast_ft \\
        --data "BSDS500 train + test splits (400 images), random crops, sigma uniform in [0, 75]"
    python tools/ship_model.py fast_color runs/active/fast_color_nm --after fast_color --data "..."
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from manifest import write_manifest
from torch import nn

from deepdenoise.weights.format import load_weights, read_meta, save_weights
from deepdenoise.weights.shipped import WEIGHTS_DIR


def config_command(meta: dict[str, Any]) -> str:
    """The ``deepdenoise train --config`` command of a run (a resumed run records ``--resume``)."""
    command = str(meta.get("command") or "")
    if "--config" in command:
        return command.replace(" --quiet", "")
    out = meta["config"]["out"]
    for cfg in sorted(Path("configs").rglob("*.yaml")):
        if f"out: {out}\n" in cfg.read_text():
            return f"deepdenoise train --config {cfg}"
    return f"deepdenoise train --config {out.replace('runs/', 'configs/')}.yaml"


def stage_info(run: Path, weights: Path) -> dict[str, object]:
    meta = read_meta(weights)["training"]
    with open(run / "log.csv") as f:
        rows = list(csv.DictReader(f))
    seconds = float(rows[-1]["elapsed_seconds"]) if rows else 0.0
    return {"command": config_command(meta),
            "steps": int(rows[-1]["step"]) if rows else meta["steps"], "train_seconds": round(seconds),
            "best_step": meta["steps"], "val_psnr": meta.get("val_psnr"),
            "val": meta["config"].get("val") or "test patches", "hardware": meta.get("hardware", "?")}


def final_weights(run: Path, best_meta: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """The run's last checkpoint (end of its lr schedule) instead of its best-validation weights."""
    from safetensors.torch import load_file

    from deepdenoise.models import build_model

    info = json.loads((run / "checkpoint.json").read_text())
    model = build_model(info["architecture"], info["config"])
    tensors = load_file(str(run / info["tensors"]))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    with open(run / "log.csv") as f:
        last = list(csv.DictReader(f))[-1]
    training = {**best_meta["training"], "steps": info["step"], "val_psnr": float(last["val_psnr"]),
                "weights": "final (end of the cosine schedule), not the best-validation epoch"}
    return model, {**best_meta, "training": training}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="registry name, e.g. fast")
    ap.add_argument("runs", nargs="+", type=Path, help="run folders, first stage first")
    ap.add_argument("--data", required=True, help="one line: what the model was trained on")
    ap.add_argument("--final", action="store_true", help="ship the last stage's final checkpoint, not its best")
    ap.add_argument("--after", help="a shipped model these runs continue: its recorded stages come first")
    a = ap.parse_args()
    stages = list(read_meta(WEIGHTS_DIR / f"{a.after}.safetensors")["training"]["stages"]) if a.after else []
    for run in a.runs:
        # an earlier stage needs only its metadata (its weights may be gone); the last one its weights
        weights = next(p for p in (run / "best.safetensors", run / "best_fp16.safetensors")
                       if p.with_suffix(".json").exists())
        stages.append(stage_info(run, weights))
    model, meta = load_weights(weights)
    if a.final:
        model, meta = final_weights(a.runs[-1], meta)
    training = dict(meta["training"])
    training.update(command=" && ".join(str(s["command"]) for s in stages), stages=stages, data=a.data,
                    total_steps=sum(int(str(s["steps"])) for s in stages),
                    total_train_seconds=sum(int(str(s["train_seconds"])) for s in stages))
    out = save_weights(model, WEIGHTS_DIR / a.name, {"training": training}, half=True)
    write_manifest()
    print(f"wrote {out} and its .json ({len(stages)} stages, {training['total_steps']} steps); MANIFEST.json updated")


if __name__ == "__main__":
    main()
