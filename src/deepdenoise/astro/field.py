"""Simulated sky fields with a known truth, and what astronomers measure on them.

A field is a sky background (with a gentle gradient), stars (a Gaussian PSF) and galaxies
(elliptical Sersic profiles) with fluxes spread over four decades, in electrons; the observation is
Poisson photon noise plus Gaussian read noise, stored in ADU with the gain and read noise in the
header as a CCD's FITS file has them. The noise-free image is the ground truth.

Measured on a frame against the truth: PSNR of the normalised image (the sky at 0.1 and 1.0 at
100 sky-noise sigmas above it, clipped to [0, 1], as a display stretch that keeps the faint end;
a min-max normalisation would let the brightest star's core decide the score), the flux of every
source in a fixed circular aperture (bias and scatter of the relative error, faint and bright
sources apart), and detections at 5 sigma of the frame's own background noise, matched to the
true positions (found / spurious).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

GAIN = 2.0  # electrons per ADU
READ_NOISE = 5.0  # electrons
SKY = 150.0  # electrons per pixel
FWHM = 3.0  # stars' PSF, pixels


@dataclass
class Field:
    truth: np.ndarray  # float64 [H, W], ADU, noise-free
    noisy: np.ndarray  # float32 [H, W], ADU
    sky: np.ndarray  # float64 [H, W], ADU, the background alone
    sources: Any  # astropy Table: x, y, flux (ADU), radius (aperture, px), kind


def simulate_field(seed: int, size: int = 256, stars: int = 60, galaxies: int = 20) -> Field:
    """One simulated field (deterministic in ``seed``)."""
    from astropy.modeling.models import Sersic2D
    from astropy.table import Table, vstack
    from photutils.datasets import make_model_image
    from photutils.psf import CircularGaussianPRF

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    sky_e = SKY * (1.0 + 0.2 * (xx / size - 0.5) + 0.1 * (yy / size - 0.5))  # [H, W]
    margin = 12
    def positions(n: int) -> dict[str, np.ndarray]:
        return {"x_0": rng.uniform(margin, size - margin, n), "y_0": rng.uniform(margin, size - margin, n)}

    st = Table({**positions(stars), "flux": 10 ** rng.uniform(2.3, 6.0, stars), "fwhm": np.full(stars, FWHM)})
    star_img = make_model_image((size, size), CircularGaussianPRF(), st, model_shape=(31, 31))
    r_eff = rng.uniform(2.0, 6.0, galaxies)
    gx = Table({**positions(galaxies), "amplitude": 10 ** rng.uniform(0.5, 2.5, galaxies), "r_eff": r_eff,
                "n": rng.uniform(0.7, 2.5, galaxies), "ellip": rng.uniform(0.0, 0.6, galaxies),
                "theta": rng.uniform(0, np.pi, galaxies)})
    gal_img = make_model_image((size, size), Sersic2D(), gx, x_name="x_0", y_name="y_0", model_shape=(61, 61))
    truth_e = sky_e + star_img + gal_img
    noisy_e = rng.poisson(truth_e).astype(np.float64) + rng.normal(0.0, READ_NOISE, truth_e.shape)
    sources = vstack([
        Table({"x": st["x_0"], "y": st["y_0"], "radius": np.full(stars, 2.0 * FWHM), "kind": ["star"] * stars}),
        Table({"x": gx["x_0"], "y": gx["y_0"], "radius": np.clip(2.5 * r_eff, 5.0, 15.0),
               "kind": ["galaxy"] * galaxies}),
    ])
    sources["flux"] = _aperture_sums(truth_e - sky_e, sources) / GAIN
    return Field(truth_e / GAIN, (noisy_e / GAIN).astype(np.float32), sky_e / GAIN, sources)


def _aperture_sums(image: np.ndarray, sources: Any) -> np.ndarray:
    from photutils.aperture import CircularAperture, aperture_photometry

    sums = np.zeros(len(sources))
    for r in np.unique(sources["radius"]):
        rows = np.nonzero(sources["radius"] == r)[0]
        ap = CircularAperture(np.column_stack([sources["x"][rows], sources["y"][rows]]), r=float(r))
        sums[rows] = np.asarray(aperture_photometry(image, ap)["aperture_sum"])
    return sums


def measure(frame: np.ndarray, field: Field) -> dict[str, float]:
    """PSNR (normalised), photometry bias/scatter and 5-sigma detections of ``frame`` against the truth."""
    sky = field.sky
    unit = 100.0 * np.sqrt(SKY + READ_NOISE ** 2) / GAIN  # ADU

    def normalised(x: np.ndarray) -> np.ndarray:
        return np.clip((x - sky) / unit + 0.1, 0.0, 1.0)

    mse = float(np.mean((normalised(frame) - normalised(field.truth)) ** 2))
    psnr = float(10 * np.log10(1.0 / max(mse, 1e-20)))
    src = field.sources
    measured = _aperture_sums(frame - sky, src)
    rel = (measured - src["flux"]) / src["flux"]
    noise_ap = np.sqrt(np.pi * src["radius"] ** 2) * (np.sqrt(SKY + READ_NOISE ** 2) / GAIN)  # sky-limited error
    faint = np.asarray(src["flux"] / noise_ap < 20)
    found, spurious, bg_std = detections(frame, field, 5.0)
    return {"psnr": psnr, "flux_bias_faint": _median(rel[faint]), "flux_scatter_faint": _robust_std(rel[faint]),
            "flux_bias_bright": _median(rel[~faint]), "flux_scatter_bright": _robust_std(rel[~faint]),
            "detected": found, "spurious": spurious, "sources": len(src), "background_std": float(bg_std)}


def detections(frame: np.ndarray, field: Field, k: float) -> tuple[int, int, float]:
    """(true sources found, spurious detections, sky noise) with photutils segmentation at ``k``
    times the frame's own sky noise (sigma-clipped), 5 connected pixels. A true source is found when
    a segment's centroid lies within 3 px of it; a segment is spurious when no true source lies
    within 3 px of its centroid nor inside it (two blended sources are one segment, not a false one)."""
    from astropy.stats import sigma_clipped_stats
    from photutils.segmentation import SourceCatalog, detect_sources

    src = field.sources
    _, _, bg_std = sigma_clipped_stats(frame - field.sky, sigma=3.0)
    seg = detect_sources(frame - field.sky, k * bg_std, n_pixels=5)
    if seg is None:
        return 0, 0, float(bg_std)
    cat = SourceCatalog(frame - field.sky, seg)
    pos = np.column_stack([cat.x_centroid, cat.y_centroid])
    d = np.hypot(pos[:, None, 0] - np.asarray(src["x"])[None], pos[:, None, 1] - np.asarray(src["y"])[None])
    matched = d.min(axis=1) <= 3.0
    xs = np.clip(np.round(np.asarray(src["x"])).astype(int), 0, frame.shape[1] - 1)
    ys = np.clip(np.round(np.asarray(src["y"])).astype(int), 0, frame.shape[0] - 1)
    holds = np.isin(np.asarray(cat.label), seg.data[ys, xs])  # a blend of true sources is no false alarm
    return int(len(np.unique(d.argmin(axis=1)[matched]))), int((~matched & ~holds).sum()), float(bg_std)


def found_at_false(frame: np.ndarray, field: Field, max_spurious: int) -> tuple[int, float]:
    """The most true sources found at any threshold (2.5 to 15 sky sigmas, steps of 0.25) that gives
    no more than ``max_spurious`` spurious detections, and the lowest threshold that finds them:
    detection power compared at an equal false-alarm count. A denoised frame's residual noise is
    correlated, so its k sigma is not a white-noise k sigma; this lets each frame pick its own."""
    best, at = -1, float("inf")
    for k in np.arange(2.5, 15.01, 0.25):
        found, spurious, _ = detections(frame, field, float(k))
        if spurious <= max_spurious and found > best:
            best, at = found, float(k)
    return max(best, 0), at


def _median(v: np.ndarray) -> float:
    return float(np.median(v)) if v.size else float("nan")


def _robust_std(v: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(v - np.median(v)))) if v.size else float("nan")


def field_header(field: Field) -> dict[str, Any]:
    """FITS keywords of a simulated CCD frame (what a real one carries)."""
    return {"GAIN": (GAIN, "electrons per ADU"), "RDNOISE": (READ_NOISE, "read noise, electrons"),
            "BUNIT": ("ADU", ""), "OBJECT": ("simulated field", "deepdenoise.astro.field")}
