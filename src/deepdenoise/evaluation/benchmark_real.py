"""``deepdenoise benchmark --pairs DIR``: our modes against the classic tools on real noisy/clean pairs.

Each classic method runs over a sweep of its strength and the best setting is reported as its
"oracle" row: no user knows the right setting for a photo in advance, so it is an upper bound for
them, and our rows run as a user would run them (noise level estimated from each photo). CBM3D
costs about 25 s per 512x512 crop here and DnCNN-S on three channels about 6 s, so their sweeps
are scored on every 11th pair and the best setting then run on all. The official DnCNN-S (gray,
per sigma: 15 and 25) runs on each channel, batch norm folded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deepdenoise.evaluation.realpairs import score_pairs

log = logging.getLogger(__name__)

Data = list[tuple[str, np.ndarray, np.ndarray]]
Fn = Callable[[np.ndarray], np.ndarray]
NLM_H = (2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
CBM3D_SIGMA = (5.0, 10.0, 15.0, 20.0)
SWEEP_EVERY = 11  # slow methods' sweeps are scored on every 11th pair (CBM3D: about 25 s a 512x512 crop)
PAIR_METHODS = ("noisy", "default", "opencv_nlm", "cbm3d", "reference")


def _nlm(h: float) -> Fn:
    import cv2

    def run(y: np.ndarray) -> np.ndarray:
        u8 = np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)
        if u8.ndim == 2:
            return cv2.fastNlMeansDenoising(u8, None, h, 7, 21).astype(np.float32) / 255.0
        rgb = cv2.fastNlMeansDenoisingColored(u8[:, :, ::-1].copy(), None, h, h, 7, 21)  # OpenCV is BGR
        return rgb[:, :, ::-1].astype(np.float32) / 255.0
    return run


def _cbm3d(sigma: float) -> Fn:
    import bm3d

    def run(y: np.ndarray) -> np.ndarray:
        if y.ndim == 2:
            return np.asarray(bm3d.bm3d(y, sigma_psd=sigma / 255.0), dtype=np.float32)
        return np.asarray(bm3d.bm3d_rgb(y, sigma_psd=sigma / 255.0), dtype=np.float32)  # YCbCr inside
    return run


def _reference(mat: Path) -> Fn:
    from deepdenoise.inference.backends import make_forward
    from deepdenoise.inference.tiling import apply_model
    from deepdenoise.weights.shipped import load_model

    model = load_model(str(mat))[0]
    forward, _ = make_forward(model, "folded")  # batch norm folded: the same network, 1.5x eager's speed
    return lambda y: apply_model(model, y, None, tile=None, forward=forward)  # gray: each channel on its own


def _ours(model: str | None, noise: str = "auto") -> Fn:
    from deepdenoise.inference.api import denoise

    return lambda y: denoise(y, model=model, noise=noise)


def _oracle(method: str, make: Callable[[float], Fn], settings: tuple[float, ...], data: Data,
            every: int, label: str, progress: bool) -> dict[str, Any]:
    """The best of ``settings`` (on every ``every``-th pair), then scored on all pairs."""
    probe = data[::every]
    sweep = {s: score_pairs(make(s), probe, with_ssim=False)["psnr"] for s in settings}
    best = max(sweep, key=lambda s: sweep[s])
    if progress:
        log.info(f"  {method} sweep: " + ", ".join(f"{label} {s:g}: {v:.2f}" for s, v in sweep.items()))
    row = score_pairs(make(best), data)  # with SSIM and the speed of the chosen setting
    return {"method": method, "settings": f"{label} {best:g} (oracle)", "oracle": True,
            "sweep": {f"{s:g}": round(v, 3) for s, v in sweep.items()},
            "sweep_pairs": len(probe), **row}


def method_rows(method: str, data: Data, reference_dir: Path | None, progress: bool) -> list[dict[str, Any]]:
    """The rows of one method: oracles for the classic tools, one row per mode for ours."""
    if method == "noisy":
        return [{"method": "noisy", "settings": "-", **score_pairs(lambda y: y, data)}]
    if method == "opencv_nlm":
        return [_oracle(method, _nlm, NLM_H, data, 1, "h", progress)]
    if method == "cbm3d":
        return [_oracle(method, _cbm3d, CBM3D_SIGMA, data, SWEEP_EVERY, "sigma", progress)]
    if method == "reference":
        mats = {s: reference_dir / f"sigma={s:g}.mat" for s in (15.0, 25.0)} if reference_dir else {}
        mats = {s: m for s, m in mats.items() if m.exists()}
        if not mats:
            log.warning(f"no official DnCNN-S weights in {reference_dir}: the reference row is left out "
                  "('deepdenoise download dncnn-reference')")
            return []
        return [_oracle(method, lambda s: _reference(mats[s]), tuple(mats), data, SWEEP_EVERY, "sigma", progress)]
    if method == "default":
        return [{"method": "default", "settings": "no flags", **score_pairs(_ours(None), data)}]
    name, _, mode = method.partition("+")
    noise = mode or "auto"
    return [{"method": method, "settings": f"--model {name}" + (f" --noise {noise}" if mode else ""),
             **score_pairs(_ours(name, noise), data)}]


def run_pairs_benchmark(data: Data, methods: list[str], reference_dir: Path | None = None,
                        progress: bool = True, reuse: dict[str, dict[str, Any]] | None = None,
                        ) -> list[dict[str, Any]]:
    """Rows for ``methods`` on the pairs; ``reuse`` maps a method to a row measured earlier on the
    same pairs (a CBM3D sweep costs half an hour here), taken as it is and marked ``reused``."""
    rows: list[dict[str, Any]] = []
    for method in methods:
        measured = [{**reuse[method], "reused": True}] if reuse and method in reuse else None
        for row in measured or method_rows(method, data, reference_dir, progress):
            rows.append(row)
            if progress:
                log.info(f"  {row['method']} ({row['settings']}): {row['psnr']:.2f} dB, {row['mp_per_s']:.3f} MP/s")
    return rows


def reusable_rows(path: str | Path, pairs: str | Path, count: int) -> dict[str, dict[str, Any]]:
    """The rows of an earlier ``benchmark --pairs --json`` file, if it measured the same pairs."""
    import json

    from deepdenoise.errors import InputError

    try:
        doc = json.loads(Path(path).read_text())
        rows = {r["method"]: r for r in doc["results"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a benchmark --pairs result ({type(exc).__name__})") from None
    if Path(str(doc.get("pairs"))).resolve() != Path(pairs).resolve() or \
            any(r.get("images") != count for r in rows.values()):
        raise InputError(f"{path}: measured on other pairs than {pairs} ({count} pairs)")
    return rows


def format_pairs_markdown(rows: list[dict[str, Any]], dataset: str, info: dict[str, Any]) -> str:
    machine = f"{info['cpu']}, {info['cores']} cores (torch {info['torch']}, {info['torch_threads']} threads)"
    lines = [f"Pairs: {dataset} ({rows[0]['images'] if rows else 0} noisy/clean pairs). Machine: {machine}", "",
             "| method | settings | PSNR | SSIM | MP/s |", "|---|---|---|---|---|"]
    for r in rows:
        settings = r["settings"] + (" (from an earlier run)" if r.get("reused") else "")
        lines.append(f"| {r['method']} | {settings} | {r['psnr']:.2f} | {r['ssim']:.4f} | {r['mp_per_s']:.3f} |")
    return "\n".join(lines) + "\n"


def pairs_figure(data: Data, columns: list[tuple[str, Fn]], out: Path, picks: int = 3, crop: int = 160) -> None:
    """Centre crops of ``picks`` pairs: noisy, each column's output, the reference."""
    from deepdenoise.evaluation.plots import _pyplot, _show
    from deepdenoise.metrics import psnr

    plt = _pyplot()
    chosen = data[:: max(1, len(data) // picks)][:picks]
    ncol = len(columns) + 2
    fig, axes = plt.subplots(len(chosen), ncol, figsize=(2.6 * ncol, 2.7 * len(chosen)), squeeze=False)
    for row, (_, noisy, clean) in zip(axes, chosen):
        h, w = noisy.shape[:2]
        y0, x0 = max(0, h // 2 - crop // 2), max(0, w // 2 - crop // 2)
        window = (slice(y0, y0 + crop), slice(x0, x0 + crop))
        _show(row[0], noisy[window], f"noisy {psnr(noisy, clean):.2f} dB")
        for ax, (label, fn) in zip(row[1:], columns):
            out_img = fn(noisy)
            _show(ax, out_img[window], f"{label} {psnr(out_img, clean):.2f} dB")
        _show(row[-1], clean[window], "reference (mean)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
