"""Impulse noise: salt-and-pepper, random-valued impulses, bit errors, hot and dead pixels.

Faulty memory, transmission bit errors and defective sensor pixels do not add a little noise to
every pixel: they replace a few pixels with values that have nothing to do with the scene. A
white-noise denoiser keeps those specks (they look like detail), a median filter removes them but
also the fine texture of every other pixel. The way through is to find the corrupted samples
first and then restore only them (a switching filter):

- :func:`detect_impulses`: an adaptive median detector. A sample is an impulse when it lies far
  from the median of its neighbourhood, judged against the local spread of the uncorrupted samples
  and against the extreme values a stuck or saturated pixel takes; the window grows with the
  density, estimated from the image when it is not given.
- :func:`restore_impulses`: the flagged samples are filled from their unflagged neighbours, then
  refined by plug-and-play with a Gaussian denoiser: add noise of a level, denoise, put the
  trusted samples back, and again at a lower level (the added noise makes a blind denoiser work at
  that level, as a noise-map one is told to); a final pass at the level measured on the trusted
  samples removes any Gaussian noise mixed in (a real channel adds both).

Noise generators take an explicit seed. Images are float arrays in [0, 1], [H, W] or [H, W, C].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

PNP_LEVELS = (25.0, 12.0, 6.0)  # plug-and-play denoiser levels (0-255 scale), coarse to fine
RANDOM_FLOOR = 0.1  # a random-valued impulse must be this far from its 3x3 median (25 of 255)


def salt_and_pepper(image: np.ndarray, density: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, mask): a fraction ``density`` of the samples set to 0 or 1 with equal chance."""
    rng = np.random.default_rng(seed)
    mask = rng.random(image.shape) < density
    out = image.astype(np.float32, copy=True)
    out[mask] = (rng.random(int(mask.sum())) < 0.5).astype(np.float32)
    return out, mask


def random_impulses(image: np.ndarray, density: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, mask): a fraction ``density`` of the samples replaced by uniform values in [0, 1]."""
    rng = np.random.default_rng(seed)
    mask = rng.random(image.shape) < density
    out = image.astype(np.float32, copy=True)
    out[mask] = rng.random(int(mask.sum())).astype(np.float32)
    return out, mask


def bit_errors(image: np.ndarray, ber: float, bits: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, mask): each bit of each stored ``bits``-bit sample flipped with probability ``ber``,
    as a noisy channel or a faulty memory does (a flip of the top bit is a large impulse, of the
    bottom bit a tiny one). ``mask``: samples with any flipped bit."""
    if bits not in (8, 16):
        raise ValueError("bits must be 8 or 16")
    rng = np.random.default_rng(seed)
    peak = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    stored = np.round(np.clip(image, 0, 1) * peak).astype(dtype)
    flips: np.ndarray = np.zeros(image.shape, dtype)
    for b in range(bits):
        flips |= np.left_shift((rng.random(image.shape) < ber).astype(dtype), b, dtype=dtype)  # bit b
    return ((stored ^ flips).astype(np.float32) / peak), flips != 0


def hot_dead_pixels(shape: tuple[int, ...], density: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(values, mask) of a sensor's defective pixels: fixed positions (per ``seed``, as a given
    sensor has), half stuck at full scale (hot), half at zero (dead). Apply as
    ``np.where(mask, values, image)``."""
    rng = np.random.default_rng(seed)
    mask = rng.random(shape[:2]) < density  # a sensor pixel: every channel of it
    if len(shape) == 3:
        mask = np.repeat(mask[:, :, None], shape[2], axis=2)
    values = np.where(rng.random(shape[:2]) < 0.5, 1.0, 0.0).astype(np.float32)
    if len(shape) == 3:
        values = np.repeat(values[:, :, None], shape[2], axis=2)
    return values, mask


def estimate_density(image: np.ndarray) -> float:
    """Fraction of samples that look like impulses at a strict threshold: a first guess that sets
    the detector's window, not its decisions."""
    from scipy.ndimage import median_filter

    planes = image[..., None] if image.ndim == 2 else image
    flagged = 0
    for c in range(planes.shape[2]):
        p = planes[:, :, c]
        med = median_filter(p, size=3, mode="reflect")
        extreme = (p <= p.min() + 1e-6) | (p >= p.max() - 1e-6)
        flagged += int(((np.abs(p - med) > 0.25) | (extreme & (np.abs(p - med) > 0.05))).sum())
    return min(0.95, flagged / planes.size)


def _deviation(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|sample - 3x3 median|, the local spread of that deviation over 7x7: texture, robust to the
    impulses themselves) of one [H, W] plane."""
    from scipy.ndimage import median_filter

    dev = np.abs(p - median_filter(p, size=3, mode="reflect"))
    return dev, median_filter(dev, size=7, mode="reflect")


def _extremes(p: np.ndarray, density: float) -> np.ndarray | None:
    """Salt-and-pepper, hot and dead pixels: when many samples sit at the extreme values, those
    that differ from what their trusted neighbours say are the impulses (None: not that kind)."""
    lo, hi = float(p.min()), float(p.max())
    extreme = (p <= lo + 1e-6) | (p >= hi - 1e-6)
    if extreme.mean() > 0.5 * density and density >= 0.05:
        return extreme & (np.abs(p - fill(p, extreme)) > 0.1)
    return None


def detect_impulses(image: np.ndarray, density: float | None = None) -> np.ndarray:
    """Boolean mask of the samples that are impulses ([H, W] or [H, W, C], like ``image``).

    A sample is flagged when its distance to its 3x3 median is above both an absolute floor and
    four times the local texture spread; in colour, also well above the other channels' distances
    at that pixel (a bit error or a defective sample hits one channel; an edge, all of them)."""
    d = estimate_density(image) if density is None else density
    planes = image[:, :, None] if image.ndim == 2 else image
    found = [_extremes(planes[:, :, c], d) for c in range(planes.shape[2])]
    if all(f is not None for f in found):
        out = np.stack(found, axis=2)  # type: ignore[arg-type]
        return out[:, :, 0] if image.ndim == 2 else out
    devs, spreads = zip(*(_deviation(planes[:, :, c]) for c in range(planes.shape[2])))
    dev = np.stack(devs, axis=2)  # [H, W, C]
    spread = np.stack(spreads, axis=2).max(axis=2, keepdims=True)  # texture of any channel
    flagged = dev > np.maximum(RANDOM_FLOOR, 4.0 * spread)
    if planes.shape[2] > 1:
        others = (dev.sum(axis=2, keepdims=True) - dev) / (planes.shape[2] - 1)
        flagged &= dev > 3.0 * others + 0.5 * RANDOM_FLOOR
    lo, hi = float(image.min()), float(image.max())
    flagged |= ((planes <= lo + 1e-6) | (planes >= hi - 1e-6)) & (dev > 0.03)
    return flagged[:, :, 0] if image.ndim == 2 else flagged


def fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Flagged samples replaced by a normalised-convolution average of the trusted ones, at the
    smallest scale that has any (holes of every size get a value)."""
    from scipy.ndimage import gaussian_filter

    trusted = (~mask).astype(np.float64)
    out = image.astype(np.float64, copy=True)
    todo = mask.copy()
    for s in (1.0, 2.0, 4.0, 8.0, 16.0):
        sigmas = (s, s) if image.ndim == 2 else (s, s, 0.0)  # spatial only: channels stay apart
        num = gaussian_filter(image * trusted, sigmas)
        den = gaussian_filter(trusted, sigmas)
        ok = todo & (den > 1e-3)
        out[ok] = num[ok] / den[ok]
        todo &= ~ok
        if not todo.any():
            break
    out[todo] = float(np.median(image[~mask])) if (~mask).any() else 0.5
    return out.astype(np.float32)


@dataclass
class ImpulseResult:
    image: np.ndarray  # restored, float32 like the input
    mask: np.ndarray  # the samples found to be impulses
    density: float  # the fraction flagged
    sigma: float  # Gaussian noise level measured on the trusted samples (0-255)


def restore_impulses(image: np.ndarray, gaussian: Callable[[np.ndarray, float], np.ndarray],
                     density: float | None = None, mask: np.ndarray | None = None,
                     sigma: float | None = None) -> ImpulseResult:
    """Detect (unless ``mask`` is given) and restore impulses with the denoiser
    ``gaussian(image, sigma_255)``; ``sigma``: the Gaussian noise mixed in (measured on the trusted
    samples when omitted). See the module docstring."""
    from deepdenoise.noise.gaussian import estimate_sigma

    found = detect_impulses(image, density) if mask is None else mask
    y = image.astype(np.float32)
    x = fill(y, found)
    if sigma is None:
        sigma = float(estimate_sigma(x))  # trusted samples plus smooth fills: the Gaussian part, if any
    rng = np.random.default_rng(0)  # the added noise is part of the method: the same every run
    for level in PNP_LEVELS:
        if level <= sigma:
            break
        z = gaussian(x + (level / 255.0) * rng.standard_normal(x.shape).astype(np.float32), level)
        x = np.where(found, z, y).astype(np.float32)  # trusted samples are data; the rest the prior's
    out = gaussian(x, max(sigma, 1.0)) if sigma > 2.0 else np.where(found, gaussian(x, 5.0), x)
    return ImpulseResult(np.clip(out, 0.0, 1.0).astype(np.float32), found, float(found.mean()), sigma)


def _blur(x: torch.Tensor, s: float) -> torch.Tensor:
    """Separable Gaussian blur of x: [B, C, H, W] (each channel alone), mirrored at the edges."""
    r = max(1, min(int(3 * s), min(x.shape[-2:]) - 1))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) / s) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.reshape(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.reshape(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def fill_torch(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """:func:`fill` for a batch: x, mask [B, C, H, W] (mask 1 where a sample is corrupted) -> the
    flagged samples replaced by a normalised-convolution average of the trusted ones, at the
    smallest scale that has any. What a mask model is given, in training and in use."""
    trusted = 1.0 - mask.float()
    out = x.clone()
    todo = mask.bool()
    for s in (1.0, 2.0, 4.0, 8.0, 16.0):
        num, den = _blur(x * trusted, s), _blur(trusted, s)
        ok = todo & (den > 1e-3)
        out = torch.where(ok, num / den.clamp_min(1e-3), out)
        todo &= ~ok
        if not bool(todo.any()):
            break
    return torch.where(todo, torch.full_like(x, 0.5), out)


def impulse_training_batch(clean: torch.Tensor, g: torch.Generator, batch: int,
                           shard: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(target, input) for training a mask model on clean [b, C, P, P]: half the patches get
    Gaussian noise up to 25, then each gets salt-and-pepper (5-70 %), random-valued impulses
    (5-50 %) or bit errors of 8-bit samples (ber 1e-3 to 5e-2); the mask is what a detector finds
    (5 % of the impulses missed, 0.5 % of the clean samples flagged); the input is the image with
    the flagged samples filled, followed by the mask [b, 2C, P, P]. Every draw is made for the
    whole ``batch`` from ``g`` and then ``shard``-ed."""
    n, (b, c, p, q) = batch, clean.shape
    dev = clean.device

    def draw(*shape: int) -> torch.Tensor:
        return shard(torch.rand((n, *shape), generator=g)).to(dev)

    sigma = torch.where(draw(1, 1, 1) < 0.5, 25.0 * draw(1, 1, 1), torch.zeros(b, 1, 1, 1, device=dev))
    noisy = clean + shard(torch.randn((n, c, p, q), generator=g)).to(dev) * sigma / 255.0  # [b, C, P, P]
    kind, u, value = (draw(1, 1, 1) * 3).floor(), draw(c, p, q), draw(c, p, q)
    density = torch.where(kind == 0, 0.05 + 0.65 * draw(1, 1, 1), 0.05 + 0.45 * draw(1, 1, 1))
    hit = u < density  # [b, C, P, P]
    corrupt = torch.where(kind == 0, torch.where(value < 0.5, 0.0, 1.0), value)
    out = torch.where(hit, corrupt, noisy)
    ber = 10 ** (-3 + 1.7 * draw(1, 1, 1))  # [b, 1, 1, 1]: 1e-3 to 5e-2
    bits = (draw(8, c, p, q) < ber.unsqueeze(1)).to(torch.int32)  # [b, 8, C, P, P]
    flips = (bits * (2 ** torch.arange(8, device=dev, dtype=torch.int32)).reshape(1, 8, 1, 1, 1)).sum(dim=1)
    q8 = torch.round(noisy.clamp(0, 1) * 255).to(torch.int32)
    flipped = torch.bitwise_xor(q8, flips).float() / 255.0
    out = torch.where(kind == 2, flipped, out)
    truth = torch.where(kind == 2, flips > 0, hit)  # [b, C, P, P]
    found = (truth & (draw(c, p, q) >= 0.05)) | (~truth & (draw(c, p, q) < 0.005))
    mask = found.float()
    return clean, torch.cat([fill_torch(out, mask), mask], dim=1)
