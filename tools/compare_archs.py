"""Architecture comparison at an equal CPU budget (issue: release models; docs/models.md).

Training every candidate for hours on this 2-core CPU is not possible in one session, so the
budget is measured in CPU time and spent on whatever hardware is there:

1. ``throughput``: each candidate trains a few steps here, on this CPU (bfloat16 autocast,
   channels_last, the real ``deepdenoise train`` loop); its patches/s go to
   docs/compare/throughput.json.
2. ``configs --hours H``: writes configs/compare/NAME.yaml with the step count this CPU would
   reach in H hours (cosine lr over those steps; a wall-clock cap for a shared GPU).
3. Train them (``deepdenoise train --config configs/compare/NAME.yaml``; on a GPU, all at once).
4. ``plot``: validation PSNR against CPU-equivalent hours (steps x batch / CPU patches per s), one
   curve per candidate, to docs/img/arch_comparison.png and docs/compare/summary.json, which
   ``deepdenoise report`` puts in docs/models.md.

    python tools/compare_archs.py throughput
    python tools/compare_archs.py configs --hours 2
    python tools/compare_archs.py plot --runs runs/compare
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

# name: (preset, model overrides, patch size, batch, loss, lr). All blind: sigma uniform in [0, 75].
CANDIDATES: dict[str, tuple[str, dict[str, Any], int, int, str, float]] = {
    "dncnn17_bn_mse": ("dncnn_s", {}, 40, 128, "mse", 1e-3),
    "dncnn17_nobn_mse": ("dncnn_s", {"batch_norm": False}, 40, 128, "mse", 2e-4),
    "dncnn17_bn_l1": ("dncnn_s", {}, 40, 128, "l1", 1e-3),
    "dncnn17_bn_mse_b32": ("dncnn_s", {}, 40, 32, "mse", 5e-4),
    "dncnn20_bn_mse_p50": ("dncnn_b", {}, 50, 128, "mse", 1e-3),
    "ffdnet15_bn_mse_p64": ("ffdnet_s", {}, 64, 128, "mse", 1e-3),
    "unet_s_l1_p96": ("unet_s", {}, 96, 32, "l1", 5e-4),
    "unet_fast_l1_p128": ("unet_fast", {}, 128, 32, "l1", 1e-3),
    "unet_fast_nmap_l1_p128": ("unet_fast", {"noise_map": True}, 128, 32, "l1", 1e-3),
}
THROUGHPUT = Path("docs/compare/throughput.json")
SUMMARY = Path("docs/compare/summary.json")


def base_config(name: str) -> dict[str, Any]:
    preset, overrides, patch, batch, loss, lr = CANDIDATES[name]
    return {"model": preset, "model_overrides": overrides, "data": "data/patches", "data_mode": "images",
            "image_dirs": ["data/BSDS500/train", "data/BSDS500/test"], "val_limit": 4096,
            "patch_size": patch, "batch_size": batch, "sigma": 0.0, "sigma_max": 75.0, "val_sigma": 25.0,
            "lr": lr, "lr_schedule": "cosine", "lr_min": 1e-6, "loss": loss, "seed": 0,
            "out": f"runs/compare/{name}"}


def measure_throughput(names: list[str], steps: int) -> None:
    from deepdenoise.training.config import TrainConfig
    from deepdenoise.training.trainer import train

    results = json.loads(THROUGHPUT.read_text()) if THROUGHPUT.exists() else {}
    for name in names:
        tmp = Path(tempfile.mkdtemp(prefix="tp-"))
        cfg = TrainConfig.from_dict({**base_config(name), "epochs": 2, "steps_per_epoch": steps,
                                     "val_limit": 64, "device": "cpu", "out": str(tmp / name)})
        try:
            train(cfg, progress=False)
            with open(tmp / name / "log.csv") as f:
                rows = list(csv.DictReader(f))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        pps = float(rows[-1]["patches_per_s"])  # second epoch: after oneDNN's warm-up
        from deepdenoise.models import create_model
        model = create_model(cfg.model, **cfg.model_overrides)
        results[name] = {"patches_per_s": pps, "pixels_per_s": pps * cfg.patch_size**2,
                         "flops_per_pixel": int(model.flops_per_pixel()),  # type: ignore[operator]
                         "params": sum(p.numel() for p in model.parameters())}
        print(f"{name}: {pps:.1f} patches/s of {cfg.patch_size}x{cfg.patch_size} "
              f"({pps * cfg.patch_size**2 / 1e3:.0f} kpx/s)", flush=True)
    import platform

    import torch
    results["_machine"] = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                           "amp": "bfloat16 autocast, channels_last"}
    THROUGHPUT.parent.mkdir(parents=True, exist_ok=True)
    THROUGHPUT.write_text(json.dumps(results, indent=2) + "\n")


def write_configs(hours: float, wall_minutes: float, out_dir: Path) -> None:
    import yaml

    tp = json.loads(THROUGHPUT.read_text())
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in CANDIDATES:
        cfg = base_config(name)
        steps = math.ceil(hours * 3600 * tp[name]["patches_per_s"] / cfg["batch_size"])
        epochs = 20
        cfg.update(epochs=epochs, steps_per_epoch=math.ceil(steps / epochs), max_minutes=wall_minutes)
        head = (f"# Architecture comparison ({name}): {hours:g} CPU-hours on the CPU of\n"
                f"# docs/compare/throughput.json = {steps} steps of {cfg['batch_size']} patches; a wall-clock cap\n"
                f"# of {wall_minutes:g} min for a shared GPU. Generated by tools/compare_archs.py configs.\n")
        (out_dir / f"{name}.yaml").write_text(head + yaml.safe_dump(cfg, sort_keys=False))
        print(f"{name}: {steps} steps")


def plot(runs: Path, evaluation: Path | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tp = json.loads(THROUGHPUT.read_text())
    bsd68 = json.loads(evaluation.read_text()) if evaluation and evaluation.exists() else {}
    summary: dict[str, Any] = {"machine": tp.get("_machine"), "candidates": {}}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    for name in CANDIDATES:
        run = runs / name
        if not (run / "best_fp16.json").exists() and not (run / "log.csv").exists():
            continue
        cfg = base_config(name)
        if (run / "log.csv").exists():
            with open(run / "log.csv") as f:
                rows = [(int(r["step"]), float(r["val_psnr"])) for r in csv.DictReader(f) if r["val_psnr"]]
        else:  # only the best weights came back: one point
            t = json.loads((run / "best_fp16.json").read_text())["training"]
            rows = [(int(t["steps"]), float(t["val_psnr"]))]
        hours = [step * cfg["batch_size"] / tp[name]["patches_per_s"] / 3600 for step, _ in rows]
        psnr = [v for _, v in rows]
        label = f"{name} ({tp[name]['flops_per_pixel'] / 1e6:.2f} MFLOP/px)"
        if len(rows) > 1:
            ax.plot(hours, psnr, marker=".", label=label)
        else:
            ax.plot(hours, psnr, marker="o", linestyle="none", label=label + ", best point only")
        final = json.loads((run / "final.json").read_text()) if (run / "final.json").exists() else {}
        summary["candidates"][name] = {
            "model": cfg["model"], "overrides": cfg["model_overrides"], "patch": cfg["patch_size"],
            "batch": cfg["batch_size"], "loss": cfg["loss"], "lr": cfg["lr"],
            "flops_per_pixel": tp[name]["flops_per_pixel"], "params": tp[name]["params"],
            "cpu_patches_per_s": tp[name]["patches_per_s"],
            "cpu_hours": round(int(final.get("step", rows[-1][0])) * cfg["batch_size"]
                               / tp[name]["patches_per_s"] / 3600, 3),
            "steps": int(final.get("step", rows[-1][0])), "best_val_psnr": max(psnr),
            "curve": len(rows) > 1, "bsd68_sigma25": bsd68.get(name)}
    ax.set_xlabel("training time on this CPU, hours (2 cores, bfloat16; GPU steps converted)")
    ax.set_ylabel("validation PSNR, dB (test patches, sigma 25, blind)")
    ax.set_title("Blind gray denoisers at an equal CPU budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    for name, c in summary["candidates"].items():  # quality per unit of compute, same budget
        if c["bsd68_sigma25"]:
            ax2.scatter(c["flops_per_pixel"] / 1e6, c["bsd68_sigma25"])
            ax2.annotate(name, (c["flops_per_pixel"] / 1e6, c["bsd68_sigma25"]), fontsize=7,
                         xytext=(4, 2), textcoords="offset points")
    ax2.set_xscale("log")
    ax2.set_xticks([0.15, 0.25, 0.5, 1.0, 1.5], ["0.15", "0.25", "0.5", "1", "1.5"])
    ax2.minorticks_off()
    ax2.set_xlabel("MFLOP per pixel (inference)")
    ax2.set_ylabel("BSD68 PSNR at sigma 25, dB (best-validation weights)")
    ax2.set_title("Quality against inference cost")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig("docs/img/arch_comparison.png", dpi=110)
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["candidates"], indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("names", nargs="*")
    t.add_argument("--steps", type=int, default=4)
    c = sub.add_parser("configs")
    c.add_argument("--hours", type=float, default=2.0)
    c.add_argument("--wall-minutes", type=float, default=8.0)
    c.add_argument("--out", type=Path, default=Path("configs/compare"))
    p = sub.add_parser("plot")
    p.add_argument("--runs", type=Path, default=Path("runs/compare"))
    p.add_argument("--bsd68", type=Path, default=Path("docs/compare/bsd68_sigma25.json"))
    a = ap.parse_args()
    if a.cmd == "throughput":
        measure_throughput(a.names or list(CANDIDATES), a.steps)
    elif a.cmd == "configs":
        write_configs(a.hours, a.wall_minutes, a.out)
    else:
        plot(a.runs, a.bsd68)


if __name__ == "__main__":
    main()
