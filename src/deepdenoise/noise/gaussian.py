"""Additive white Gaussian noise and noise-level estimation.

Sigma is on the 0-255 scale and applied to images in [0, 1]: y = x + sigma/255 * n, n ~ N(0, 1).
The standard protocol adds noise in float and does not clip, so that the noise stays Gaussian.
Randomness is explicit: pass a seed or a ``torch.Generator``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


def make_generator(seed: int | torch.Generator | None, device: str | torch.device = "cpu") -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator(device=device)
    g.manual_seed(0 if seed is None else int(seed))
    return g


def add_gaussian_noise(
    x: torch.Tensor, sigma: float | torch.Tensor, seed: int | torch.Generator | None = 0
) -> torch.Tensor:
    """Return x + sigma/255 * N(0, 1) in float, unclipped. ``sigma`` may be per-sample [B]."""
    g = make_generator(seed, x.device)
    noise = torch.randn(x.shape, generator=g, device=x.device, dtype=torch.float32)  # like x
    s = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
    if s.ndim == 1:
        s = s.reshape(-1, *([1] * (x.ndim - 1)))  # [B, 1, 1, 1]
    return x.float() + noise * (s / 255.0)


def add_noise_numpy(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """NumPy convenience wrapper with the same noise stream as :func:`add_gaussian_noise`."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    return add_gaussian_noise(t, sigma, seed).numpy()


def estimate_sigma(image: np.ndarray | torch.Tensor) -> float:
    """Estimate the Gaussian noise level (0-255 scale) of an image in [0, 1].

    Method: the robust median estimator on the finest diagonal wavelet band (Donoho & Johnstone):
    sigma = median(|HH|) / 0.6745 with an orthonormal Haar transform, computed per channel and
    averaged. It is cheap, needs no training, and is accurate to about 1 on natural images for
    sigma >= 10; on textured clean images it overestimates by a few units.
    """
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    if h < 2 or w < 2:
        return 0.0
    sig = []
    for c in range(a.shape[2]):  # one channel at a time: bounded memory on large photos
        p = a[:h, :w, c].astype(np.float32, copy=False)
        hh = (p[0::2, 0::2] - p[0::2, 1::2] - p[1::2, 0::2] + p[1::2, 1::2]) * 0.5  # [H/2, W/2]
        sig.append(float(np.median(np.abs(hh))) / 0.6745)
    return float(np.mean(sig) * 255.0)


def local_std(residual: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Per-channel local standard deviation of a zero-mean residual [B, C, H, W] (0-255 scale):
    what a noise-level map says about each pixel when the noise is known (training targets)."""
    r2 = F.avg_pool2d(residual.float() ** 2, window, stride=1, padding=window // 2,
                      count_include_pad=False)  # [B, C, H, W]
    return r2.sqrt() * 255.0


def random_noise_maps(clean: torch.Tensor, g: torch.Generator, lo: float, hi: float, batch: int | None = None,
                      shard: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Noise-level maps [B, C, P, P] (0-255) for a batch of clean patches [B, C, P, P], so a
    noise-map model learns to follow the map rather than one number per image.

    Each patch draws one of four kinds (FFDNet trains on uniform maps; camera noise is neither
    uniform nor the same in every channel): 40% one level everywhere; 20% one level per channel
    (factor 0.6-1.4 each); 20% a smooth random field (a 3x3 grid of levels, bilinear); 20% a
    level that grows with brightness, sigma(x) = s * sqrt(k + (1 - k) * 2x), as photon noise does.
    Every draw comes from ``g`` for the whole ``batch`` (default: this one) and is then ``shard``-ed,
    so any world size sees the same maps.
    """
    b, c, p, _ = clean.shape
    n, cut = batch or b, shard or (lambda t: t)
    base = cut(lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=g))  # [B, 1, 1, 1]
    kind = cut(torch.randint(0, 10, (n,), generator=g))  # [B]: 0-3 constant, 4-5 per channel, 6-7 field, 8-9 brightness
    per_channel = cut(0.6 + 0.8 * torch.rand(n, c, 1, 1, generator=g))  # [B, C, 1, 1]
    grid = cut(lo + (hi - lo) * torch.rand(n, 1, 3, 3, generator=g))  # [B, 1, 3, 3]
    k = cut(0.1 + 0.9 * torch.rand(n, 1, 1, 1, generator=g))  # [B, 1, 1, 1]
    field = F.interpolate(grid, size=(p, p), mode="bilinear", align_corners=True)  # [B, 1, P, P]
    bright = F.avg_pool2d(clean.float().cpu(), 5, stride=1, padding=2, count_include_pad=False)  # [B, C, P, P]
    shaped = base * (k + (1 - k) * 2 * bright.clamp(0, 1)).sqrt()  # [B, C, P, P]
    kind = kind.reshape(b, 1, 1, 1)
    maps = torch.where(kind < 4, base.expand(b, c, p, p), base * per_channel.expand(b, c, p, p))
    maps = torch.where((kind >= 6) & (kind < 8), field.expand(b, c, p, p) * per_channel, maps)
    maps = torch.where(kind >= 8, shaped, maps)
    return maps.clamp(0, 255).to(clean.device)  # [B, C, P, P]


def haar_sigma(noisy: torch.Tensor) -> torch.Tensor:
    """The noise level (0-255) of each patch and channel of noisy [B, C, P, P] from the finest
    diagonal Haar band's median absolute value: what a photo's estimate reads for white noise,
    texture bias included. Returns [B, C]."""
    x = noisy.float()
    hh = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2  # [B, C, P/2, P/2]
    return hh.abs().flatten(2).median(dim=2).values / 0.6745 * 255.0  # [B, C]
