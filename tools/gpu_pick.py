"""After a GPU training call: score each candidate on a dataset (sigma 25, given, fp32) and put
the best ones' fp16 weights in OUT as parts the device tool can return (at most 8 files of
16 MiB, 64 MiB in all). Reassemble here: cat NAME.safetensors.part-* > NAME.safetensors.

    python3 tools/gpu_pick.py OUT DATASET KEEP RUN [RUN ...]   (RUN: e.g. fastnm/g1444_mse)
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from deepdenoise.evaluation.evaluate import evaluate_dataset
from deepdenoise.weights.format import load_weights

PART = 15 * 2**20
BUDGET = 60 * 2**20  # leaves room for logs.tgz and pick.json


def main(out: Path, dataset: str, keep: int, runs: list[str]) -> None:
    scores = []
    for run in runs:
        w = Path("runs") / run / "best_fp16.safetensors"
        if not w.exists():
            scores.append({"run": run, "psnr": None})
            continue
        model, meta = load_weights(w)
        r = evaluate_dataset(model.eval(), dataset, [25.0], with_ssim=False)[0]
        scores.append({"run": run, "psnr": round(r["psnr_denoised"], 4), "images": r["images"],
                       "val_psnr": meta.get("training", {}).get("val_psnr"), "bytes": w.stat().st_size})
        print(f"{run}: {r['psnr_denoised']:.4f} dB on {Path(dataset).name} sigma 25", flush=True)
    ranked = sorted((s for s in scores if s["psnr"] is not None), key=lambda s: -s["psnr"])
    budget, files = BUDGET, 2  # logs.tgz, pick.json
    for s in ranked[:keep]:
        nparts = -(-s["bytes"] // PART)
        if s["bytes"] > budget or files + nparts + 1 > 8:
            s["returned"] = False
            continue
        name = s["run"].replace("/", "_")
        w = Path("runs") / s["run"] / "best_fp16.safetensors"
        with open(w, "rb") as f:
            for k in range(nparts):
                (out / f"{name}.safetensors.part-{k:02d}").write_bytes(f.read(PART))
        shutil.copy(w.with_suffix(".json"), out / f"{name}.json")
        budget -= s["bytes"]
        files += nparts + 1
        s["returned"] = True
    (out / "pick.json").write_text(json.dumps({"dataset": dataset, "sigma": 25, "scores": scores}, indent=2) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4:])
