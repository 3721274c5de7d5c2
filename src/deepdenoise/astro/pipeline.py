"""FITS files through the denoisers: every image HDU (or one), frame by frame, NaN kept NaN,
the header kept with a HISTORY card, and simulated fields scored as astronomers would."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepdenoise.astro.fits import read_fits, write_fits
from deepdenoise.astro.stretch import AstroNoise, SkyNoise, denoise_frame, sky_noise
from deepdenoise.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AstroOptions:
    noise: str = "auto"  # auto: Poisson when the gain is known and the sky is well above zero
    gain: float | None = None  # electrons per data unit; default: the header's GAIN
    read_noise: float | None = None  # electrons; default: the header's RDNOISE
    hdu: str | None = None  # one HDU (index or EXTNAME); default: every image HDU
    model: str | None = None
    tile: int | None = 512
    backend: str = "folded"
    max_pixels: int | None = None


def choose_noise(frame: np.ndarray, opts: AstroOptions, gain: float | None) -> AstroNoise:
    if opts.noise in ("gaussian", "poisson"):
        return opts.noise  # type: ignore[return-value]
    if opts.noise != "auto":
        raise InputError(f"noise '{opts.noise}' does not apply to FITS data (auto, gaussian or poisson)")
    if gain is None:
        return "gaussian"
    sky = sky_noise(frame, "gaussian", None, None)
    return "poisson" if sky.sky > 5 * sky.sigma else "gaussian"  # sky-subtracted data: no counts left to model


def denoise_frames(frames: np.ndarray, opts: AstroOptions, gain: float | None,
                   read_noise: float | None) -> tuple[np.ndarray, list[SkyNoise]]:
    """Denoise [N, H, W] frames (data units) in place; returns them and each frame's noise model."""
    from deepdenoise.inference.api import denoise

    def gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
        return denoise(img, sigma=sigma, model=opts.model or "default", tile=opts.tile, backend=opts.backend,
                       noise="gaussian")

    models = []
    for i in range(frames.shape[0]):
        kind = choose_noise(frames[i], opts, gain)
        model = sky_noise(frames[i], kind, gain, read_noise)
        frames[i] = denoise_frame(frames[i], model, gaussian)
        models.append(model)
    return frames, models


def denoise_fits_file(src: Path, dst: Path, opts: AstroOptions, overwrite: bool = False) -> dict[str, Any]:
    """Denoise a FITS file into ``dst`` (FITS); returns a report like :func:`denoise_file`'s."""
    from deepdenoise import __version__

    if not str(dst).lower().endswith((".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")):
        raise InputError(f"{dst}: a FITS input is written as FITS (.fits, .fit, .fts, optionally .gz)")
    f = read_fits(src, opts.hdu, opts.max_pixels)
    t0 = time.perf_counter()
    notes, models = [], []
    for img in f.images:
        gain = opts.gain or img.gain
        rn = opts.read_noise if opts.read_noise is not None else img.read_noise
        _, m = denoise_frames(img.frames, opts, gain, rn)
        models += m
        masked = int(np.isnan(img.frames).sum())
        if masked:
            notes.append(f"HDU {img.index}: {masked} masked (NaN) pixels kept NaN")
    seconds = time.perf_counter() - t0
    model_name = opts.model or "default"
    history = (f"deepdenoise {__version__}: denoised with model {model_name}, {models[0].describe()}"
               + (f" (first of {len(models)} frames)" if len(models) > 1 else ""))
    write_fits(dst, f, history, overwrite)
    megapixels = sum(i.frames.size for i in f.images) / 1e6
    return {"model": model_name, "sigma": models[0].sigma, "sigma_estimated": True, "notes": notes,
            "noise": "astro", "astro": models[0].describe(), "seconds": seconds, "megapixels": megapixels,
            "hdus": [i.index for i in f.images]}


def evaluate_fields(fields: int = 3, size: int = 256, opts: AstroOptions = AstroOptions(),
                    seed: int = 0) -> list[dict[str, Any]]:
    """Simulated fields: the noisy frame, a Gaussian smoothing of it, wavelet shrinkage and BM3D
    (through the same stabilisation and flux-keeping steps as ours), and ours under both noise
    models (Gaussian sky noise; Poisson + read noise from the header's gain), against the truth.
    Besides the 5-sigma counts, each method's true detections are counted at the threshold that
    gives it no more spurious ones than the noisy frame has at 5 sigma."""
    from deepdenoise.astro.field import found_at_false, measure, simulate_field

    rows: dict[str, list[dict[str, float]]] = {}
    for k in range(fields):
        field = simulate_field(seed + k, size)
        frames = _field_frames(field.noisy.astype(np.float64), opts)
        allowed = None
        for method, frame in frames.items():
            m = measure(frame, field)
            allowed = m["spurious"] if allowed is None else allowed  # the noisy frame's, measured first
            m["found_equal_false"], m["threshold_equal_false"] = found_at_false(frame, field, int(allowed))
            rows.setdefault(method, []).append(m)
    return [{"method": method, "fields": len(ms), **{k: float(np.mean([m[k] for m in ms])) for k in ms[0]}}
            for method, ms in rows.items()]


def _field_frames(noisy: np.ndarray, opts: AstroOptions) -> dict[str, np.ndarray]:
    """Every method's result for one simulated frame (ADU), the noisy frame first."""
    from dataclasses import replace

    from scipy.ndimage import gaussian_filter

    from deepdenoise.astro.field import GAIN, READ_NOISE

    frames = {"noisy": noisy, "Gaussian smoothing (1 px)": gaussian_filter(noisy, 1.0)}
    model = sky_noise(noisy, "poisson", GAIN, READ_NOISE)
    for label, fn in _baselines().items():
        frames[label] = denoise_frame(noisy.copy(), model, fn)
    name = opts.model or "default"
    for noise in ("gaussian", "poisson"):
        den, _ = denoise_frames(noisy[None].copy(), replace(opts, noise=noise), GAIN, READ_NOISE)
        frames[f"deepdenoise {name}, {noise}"] = den[0]
    return frames


def _baselines() -> dict[str, Any]:
    """Classical denoisers as ``f(image_01, sigma_255)``: scikit-image's wavelet shrinkage
    (BayesShrink) and BM3D when the ``bm3d`` package is installed (the ``bench`` extra)."""
    from skimage.restoration import denoise_wavelet

    out: dict[str, Any] = {"wavelet (BayesShrink)": lambda img, s: denoise_wavelet(
        img, sigma=s / 255.0, method="BayesShrink", mode="soft", rescale_sigma=True)}
    try:
        import bm3d
    except ImportError:
        log.info("bm3d is not installed: no BM3D row (pip install 'deepdenoise[bench]')")
        return out
    out["BM3D"] = lambda img, s: bm3d.bm3d(img, s / 255.0).astype(np.float32)
    return out


ASTRO_COLUMNS = [("psnr", "PSNR dB", "{:.2f}"), ("flux_bias_faint", "faint flux bias", "{:+.1%}"),
                 ("flux_scatter_faint", "faint scatter", "{:.1%}"), ("flux_bias_bright", "bright flux bias", "{:+.2%}"),
                 ("flux_scatter_bright", "bright scatter", "{:.2%}"), ("detected", "found (5 sigma)", "{:.1f}"),
                 ("spurious", "spurious", "{:.1f}"), ("found_equal_false", "found at equal false", "{:.1f}"),
                 ("threshold_equal_false", "its threshold (sigma)", "{:.2f}"),
                 ("background_std", "sky std ADU", "{:.2f}")]


def format_astro_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`evaluate_fields` rows (means over the fields)."""
    head = ["method"] + [label for _, label, _ in ASTRO_COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"]] + [fmt.format(r[key]) for key, _, fmt in ASTRO_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    sources = int(rows[0]["sources"]) if rows else 0
    return "\n".join(lines) + f"\n\n{rows[0]['fields'] if rows else 0} fields, {sources} true sources each\n"
