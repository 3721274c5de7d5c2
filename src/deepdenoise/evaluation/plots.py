"""The DnCNN experiment's figures (and the training curve), as PNG files.

1. ``comparison.png``: clean / noisy / denoised side by side, PSNR in the titles;
2. ``patches.png``: a grid of noisy vs denoised test patches;
3. ``psnr_vs_sigma.png``: PSNR of the noisy and the denoised images against sigma 5..75.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from deepdenoise.evaluation.evaluate import evaluate_images, load_dataset, model_denoiser
from deepdenoise.inference.tiling import apply_model
from deepdenoise.metrics import psnr
from deepdenoise.models import Denoiser
from deepdenoise.noise import add_noise_numpy


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _show(ax, img: np.ndarray, title: str) -> None:  # type: ignore[no-untyped-def]
    ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_title(title, fontsize=10)
    ax.axis("off")


def comparison_figure(model: Denoiser, images: list[np.ndarray], names: list[str], sigma: float,
                      out: Path, seed: int = 0) -> list[dict[str, Any]]:
    plt = _pyplot()
    fig, axes = plt.subplots(len(images), 3, figsize=(12, 3.2 * len(images)), squeeze=False)
    rows = []
    for i, (clean, name) in enumerate(zip(images, names)):
        noisy = add_noise_numpy(clean, sigma, seed + i)
        den = apply_model(model, noisy, sigma)
        pn, pd = psnr(noisy, clean), psnr(den, clean)
        _show(axes[i, 0], clean, f"{name}: ground truth")
        _show(axes[i, 1], noisy, f"noisy (sigma {sigma:g}): {pn:.2f} dB")
        _show(axes[i, 2], den, f"denoised: {pd:.2f} dB")
        rows.append({"image": name, "psnr_noisy": pn, "psnr_denoised": pd})
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return rows


def real_noise_figure(paths: list[Path], out: Path, variants: list[tuple[str, dict[str, Any]]],
                      crop: int = 192) -> list[dict[str, Any]]:
    """Real noisy photos (no clean reference): a central crop of each as it is, then through each
    ``(title, denoise keyword arguments)`` of ``variants`` (e.g. plain, ``noise='camera'``)."""
    from deepdenoise.inference.api import denoise_with_info
    from deepdenoise.io import read_image

    plt = _pyplot()
    n = len(variants) + 1
    fig, axes = plt.subplots(len(paths), n, figsize=(3 * n, 3.2 * len(paths)), squeeze=False)
    rows = []
    for i, p in enumerate(paths):
        img = read_image(p).pixels  # [H, W] or [H, W, 3] in [0, 1]
        h, w = img.shape[:2]
        y0, x0 = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        _show(axes[i, 0], img[y0:y0 + crop, x0:x0 + crop], f"{p.stem}: as taken")
        row: dict[str, Any] = {"image": p.name}
        for j, (title, kwargs) in enumerate(variants, start=1):
            res = denoise_with_info(img, **kwargs)
            den, info = res.image, res.info
            _show(axes[i, j], den[y0:y0 + crop, x0:x0 + crop], title)
            row[title] = {"model": info["model"], "sigma": round(info["sigma"], 2)}
        rows.append(row)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return rows


def patch_figure(model: Denoiser, patches: np.ndarray, sigma: float, out: Path, seed: int = 0) -> None:
    """patches: float [N, P, P] or [N, P, P, 3]; rows: clean, noisy, denoised."""
    plt = _pyplot()
    n = len(patches)
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.4), squeeze=False)
    for j, clean in enumerate(patches):
        noisy = add_noise_numpy(clean, sigma, seed + j)
        den = apply_model(model, noisy, sigma)
        _show(axes[0, j], clean, "clean")
        _show(axes[1, j], noisy, f"{psnr(noisy, clean):.1f} dB")
        _show(axes[2, j], den, f"{psnr(den, clean):.1f} dB")
    axes[0, 0].set_ylabel("clean")
    fig.suptitle(f"test patches: clean / noisy (sigma {sigma:g}) / denoised, PSNR per patch")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def sigma_curve(model: Denoiser, images: list[np.ndarray], names: list[str], sigmas: list[float],
                seed: int = 0) -> list[dict[str, float]]:
    den = model_denoiser(model)
    rows = []
    for s in sigmas:
        scores = evaluate_images(den, images, names, s, seed, with_ssim=False)
        rows.append({"sigma": s, "psnr_noisy": float(np.mean([r.psnr_noisy for r in scores])),
                     "psnr_denoised": float(np.mean([r.psnr_denoised for r in scores]))})
    return rows


def sigma_figure(rows: list[dict[str, float]], out: Path, label: str, train_sigma: str = "") -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    s = [r["sigma"] for r in rows]
    ax.plot(s, [r["psnr_noisy"] for r in rows], "o-", label="noisy input")
    ax.plot(s, [r["psnr_denoised"] for r in rows], "s-", label=f"denoised ({label})")
    ax.set_xlabel("noise level sigma (0-255 scale)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"PSNR against noise level{train_sigma}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def training_curve(log_csv: Path, out: Path, title: str = "training") -> None:
    plt = _pyplot()
    with open(log_csv) as f:
        all_rows = [r for r in csv.DictReader(f) if r.get("val_psnr")]
    rows = [r for r in all_rows if r.get("loss")]
    calibrated = [r for r in all_rows if r.get("lr") == "precise-bn"]
    fig, ax1 = plt.subplots(figsize=(7, 4.5))
    ep = [float(r["epoch"]) for r in rows]
    ax1.plot(ep, [float(r["val_psnr"]) for r in rows], "o-", color="C0", label="test-patch PSNR")
    if calibrated:
        ax1.plot([float(r["epoch"]) for r in calibrated], [float(r["val_psnr"]) for r in calibrated], "*",
                 color="C2", markersize=12, label="after precise BN")
        ax1.legend(loc="lower right")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("PSNR on test patches (dB)", color="C0")
    ax2 = ax1.twinx()
    ax2.plot(ep, [float(r["loss"]) for r in rows], "s--", color="C1", label="training loss")
    ax2.set_ylabel("training loss", color="C1")
    ax2.set_yscale("log")
    ax1.set_title(title)
    ax1.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def make_figures(model: Denoiser, dataset: str | Path, out: str | Path, sigma: float = 25.0,
                 patches_file: str | Path | None = None, limit: int = 10, label: str = "model",
                 seed: int = 0) -> dict[str, Any]:
    """Write the three experiment figures into ``out``; return the numbers they show."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images, names, color = load_dataset(dataset, limit)
    comp = comparison_figure(model, images[:2], names[:2], sigma, out / "comparison.png", seed)
    if patches_file and Path(patches_file).exists():
        arr = np.load(patches_file, allow_pickle=False)
        rng = np.random.default_rng(seed)
        pick = arr[np.sort(rng.choice(len(arr), 8, replace=False))].astype(np.float32) / 255.0
    else:  # crops of the dataset images
        p = 40
        pick = np.stack([im[(im.shape[0] - p) // 2:(im.shape[0] + p) // 2, k * 40:k * 40 + p]
                         for k, im in enumerate(images[:8])])
    patch_figure(model, pick, sigma, out / "patches.png", seed)
    curve = sigma_curve(model, images, names, [float(s) for s in range(5, 80, 5)], seed)
    sigma_figure(curve, out / "psnr_vs_sigma.png", label, f" ({Path(dataset).name}, {len(images)} images)")
    return {"comparison": comp, "psnr_vs_sigma": curve,
            "files": [str(out / n) for n in ("comparison.png", "patches.png", "psnr_vs_sigma.png")]}


def chained_log(logs: list[Path]) -> list[tuple[float, float]]:
    """(minutes, val PSNR) of runs chained by ``init_from``, with cumulative training time."""
    points: list[tuple[float, float]] = []
    offset = 0.0
    for log in logs:
        with open(log) as f:
            rows = [r for r in csv.DictReader(f) if r.get("val_psnr") and r.get("loss")]
        points += [(offset + float(r["elapsed_seconds"]) / 60, float(r["val_psnr"])) for r in rows]
        offset += float(rows[-1]["elapsed_seconds"]) / 60 if rows else 0.0
    return points


def runs_curve(logs: dict[str, list[Path]], out: Path, title: str) -> None:
    """Validation PSNR against cumulative training time for several runs (or chained stages)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, chain in logs.items():
        pts = chained_log(chain)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ".-", label=label)
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("PSNR on test patches, sigma 25 (dB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def plot_noise_levels(items: list[tuple[str, Any]], out: str | Path) -> None:
    """One panel per image: its estimated noise level against brightness, a line per channel."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(items), figsize=(4.2 * len(items), 3.4), squeeze=False)
    colors = {1: ["0.2"], 3: ["tab:red", "tab:green", "tab:blue"]}
    for ax, (name, level) in zip(axes[0], items):
        d = level.to_dict()
        names = ["gray"] if len(d["levels"]) == 1 else ["R", "G", "B"]
        for row, label, color in zip(d["levels"], names, colors.get(len(d["levels"]), ["0.2"] * 3)):
            ax.plot(d["knots"], row, "o-", color=color, label=label, ms=3)
        ax.bar(d["knots"], np.asarray(d["weights"]) * max(max(r) for r in d["levels"]), width=0.1,
               color="0.85", zorder=0, label="share of pixels")
        ax.set_title(f"{Path(name).name}: typical {d['typical']:.1f}", fontsize=9)
        ax.set_xlabel("brightness")
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("noise std (0-255)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
