"""Impulse noise on a dataset: our impulse mode against median filters, at several densities.

Corruptions (seeded per image): ``impulse`` (salt-and-pepper at density p), ``random`` (random-valued
impulses at density p), ``biterror`` (each bit of each 8-bit sample flipped with probability ber).
Rows: the noisy image, OpenCV ``medianBlur`` 3 and 5, scikit-image's median (3x3), the adaptive
median filter (Hwang & Haddad 1995, windows 3 to 9) and ours (:mod:`deepdenoise.noise.impulse`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepdenoise.errors import InputError
from deepdenoise.metrics import psnr, ssim
from deepdenoise.noise.impulse import bit_errors, random_impulses, salt_and_pepper

log = logging.getLogger(__name__)
CORRUPTIONS: dict[str, Callable[[np.ndarray, float, int], tuple[np.ndarray, np.ndarray]]] = {
    "impulse": lambda x, p, seed: salt_and_pepper(x, p, seed),
    "random": lambda x, p, seed: random_impulses(x, p, seed),
    "biterror": lambda x, p, seed: bit_errors(x, p, 8, seed),
}


def _per_plane(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        if x.ndim == 2:
            return fn(x)
        return np.stack([fn(x[:, :, c]) for c in range(x.shape[2])], axis=2)
    return run


def _cv2_median(k: int) -> Callable[[np.ndarray], np.ndarray]:
    import cv2

    def run(x: np.ndarray) -> np.ndarray:
        u8 = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)
        return cv2.medianBlur(u8, k).astype(np.float32) / 255.0
    return run


def _skimage_median(x: np.ndarray) -> np.ndarray:
    from skimage.filters import median

    return median(x, np.ones((3, 3), bool), mode="reflect").astype(np.float32)


def adaptive_median(x: np.ndarray, max_window: int = 9) -> np.ndarray:
    """The adaptive median filter (Hwang & Haddad, IEEE TIP 1995) on one [H, W] plane: a pixel
    that is an extreme of its window is replaced by the window's median, the window growing
    (3, 5, ...) until its median is not itself an extreme."""
    from scipy.ndimage import maximum_filter, median_filter, minimum_filter

    out = x.astype(np.float32, copy=True)
    pending = np.ones(x.shape, bool)
    for k in range(3, max_window + 1, 2):
        lo, hi = minimum_filter(x, k, mode="reflect"), maximum_filter(x, k, mode="reflect")
        med = median_filter(x, k, mode="reflect")
        level_a = pending & (lo < med) & (med < hi)  # the median is trustworthy at this size
        keep = level_a & (lo < x) & (x < hi)
        out[level_a & ~keep] = med[level_a & ~keep]
        pending &= ~level_a
        if k == max_window:
            out[pending] = med[pending]
    return out


def baselines() -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    return {"OpenCV median 3x3": _cv2_median(3), "OpenCV median 5x5": _cv2_median(5),
            "scikit-image median 3x3": _per_plane(_skimage_median),
            "adaptive median (3-9)": _per_plane(adaptive_median)}


def ours(model: str | None, backend: str) -> Callable[[np.ndarray], np.ndarray]:
    from deepdenoise.inference.api import denoise

    return lambda x: denoise(x, model=model, noise="impulse", backend=backend)


def run_impulse_benchmark(dataset: str | Path, kind: str, levels: list[float], limit: int | None = None,
                          seed: int = 0, model: str | None = None, backend: str = "folded",
                          methods: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per (level, method): mean PSNR/SSIM and seconds per image over the dataset."""
    from deepdenoise.evaluation.evaluate import load_dataset

    if kind not in CORRUPTIONS:
        raise InputError(f"impulse noise kind must be one of {', '.join(CORRUPTIONS)} (got {kind!r})")
    images, _, color = load_dataset(dataset, limit=limit)
    rows = []
    every = {"noisy": lambda x: x, **baselines(), "deepdenoise": ours(model, backend)}
    chosen = {k: v for k, v in every.items() if methods is None or k in methods or k == "noisy"}
    for level in levels:
        noisy = [CORRUPTIONS[kind](img, level, seed + i)[0] for i, img in enumerate(images)]
        for name, fn in chosen.items():
            t0 = time.perf_counter()
            outs = [fn(y) for y in noisy]
            dt = (time.perf_counter() - t0) / len(outs)
            rows.append({"dataset": Path(dataset).name, "noise": kind, "level": level, "method": name,
                         "psnr": float(np.mean([psnr(o, c) for o, c in zip(outs, images)])),
                         "ssim": float(np.mean([ssim(o, c) for o, c in zip(outs, images)])),
                         "seconds": dt, "images": len(images), "color": color})
            log.info("%s %s %g: %.2f dB", kind, name, level, rows[-1]["psnr"])
    return rows


def format_impulse_markdown(rows: list[dict[str, Any]]) -> str:
    """Methods as rows, levels as columns (PSNR / SSIM), the best median row marked for comparison."""
    levels = sorted({r["level"] for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    label = {"impulse": "salt-and-pepper", "random": "random impulses", "biterror": "bit errors, ber"}[rows[0]["noise"]]
    head = "| method | " + " | ".join(f"{label} {lv:g}" for lv in levels) + " | s/image |"
    lines = [head, "|" + "---|" * (len(levels) + 2)]
    for m in methods:
        cells = []
        for lv in levels:
            r = next(r for r in rows if r["method"] == m and r["level"] == lv)
            cells.append(f"{r['psnr']:.2f} / {r['ssim']:.3f}")
        secs = np.mean([r["seconds"] for r in rows if r["method"] == m])
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {secs:.2f} |")
    gains = []
    for lv in levels:
        best = max((r for r in rows if r["level"] == lv and r["method"] not in ("noisy", "deepdenoise")),
                   key=lambda r: r["psnr"], default=None)
        mine = next((r for r in rows if r["level"] == lv and r["method"] == "deepdenoise"), None)
        if best and mine:
            gains.append(f"{lv:g}: {mine['psnr'] - best['psnr']:+.2f} dB over {best['method']}")
    tail = f" Ours against the best median row: {'; '.join(gains)}" if gains else ""
    return "\n".join(lines) + "\n\nPSNR dB / SSIM." + tail + "\n"


def impulse_figure(dataset: str | Path, kind: str, level: float, out: Path, model: str | None = None,
                   seed: int = 0) -> None:
    """Crops of one image: noisy / the best median filter there / ours / clean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepdenoise.evaluation.evaluate import load_dataset

    clean = load_dataset(dataset, limit=1)[0][0]
    noisy = CORRUPTIONS[kind](clean, level, seed)[0]
    scored = {name: fn(noisy) for name, fn in baselines().items()}
    best = max(scored, key=lambda k: psnr(scored[k], clean))
    panels = [("noisy", noisy), (best, scored[best]), ("deepdenoise", ours(model, "folded")(noisy)), ("clean", clean)]
    h, w = clean.shape[:2]
    ys, xs = slice(h // 4, h // 4 + 160), slice(w // 4, w // 4 + 160)
    fig, axes = plt.subplots(1, 4, figsize=(13, 4.0))
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(np.clip(img[ys, xs], 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{title}\n{psnr(img, clean):.2f} dB" if title != "clean" else title, fontsize=9)
        ax.axis("off")
    fig.tight_layout(pad=1.5)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
