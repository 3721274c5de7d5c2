"""A photo's noise as a noise-level function (NLF): standard deviation per channel against brightness.

Why not one number: a camera's noise grows with the light (shot noise), white balance and the
colour matrix make one channel noisier than another, and demosaicing and JPEG make it spatially
correlated, so the finest-scale estimate (:func:`deepdenoise.noise.estimate_sigma`) sees only a
part of it. Noise-map models take a per-pixel level instead; this module estimates the function
from the image and turns it into that map, tile by tile.

Estimation (after Foi et al. 2008 and Liu et al. 2014: the noise of flat regions, binned by
intensity): each channel is cut into 8x8 blocks and each block's standard deviation about its
best-fitting plane measured. That is the pointwise level a per-pixel map means, correlated noise
included (the finest wavelet band sees only its high-frequency part: on simulated camera noise it
reads 9 where the level is 22). In each intensity bin the low quantile of the blocks' values
belongs to the flattest blocks (texture only adds to it) and is divided by the same quantile of
the chi distribution that pure noise would give, which removes the bias of picking low values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

BINS = 8  # intensity bins of the estimated function (knots at their centres)
BLOCK = 8  # Haar coefficients per block side: 64 per block
QUANTILE = 0.15  # of the blocks' standard deviations in a bin: the flat ones
MIN_BLOCKS = 12  # a bin with fewer blocks borrows its neighbours' level
PRIOR_BLOCKS = 60  # each bin's level is pulled towards the whole channel's as if by this many blocks
MAP_BLUR = 2  # the map follows brightness through a (2 * MAP_BLUR + 1)^2 box: radius in pixels


@dataclass(frozen=True)
class NoiseLevel:
    """Noise std (0-255 scale) per channel as a function of intensity in [0, 1].

    ``levels`` holds one row per channel with one value per knot; knots are the centres of
    ``len(row)`` equal bins of [0, 1] (one value: the same level at every brightness).
    ``weights`` is the fraction of the image's pixels in each bin (for the typical level);
    ``correlated`` how far the estimate judged the noise spatially correlated (0 white, 1 a
    camera's demosaiced or compressed grain), which picks the model for a photo.
    """

    levels: tuple[tuple[float, ...], ...]
    weights: tuple[float, ...] = field(default=(1.0,))
    correlated: float = 0.0

    @staticmethod
    def constant(sigma: float, channels: int = 1) -> NoiseLevel:
        return NoiseLevel(tuple((float(sigma),) for _ in range(channels)))

    @property
    def channels(self) -> int:
        return len(self.levels)

    @property
    def is_constant(self) -> bool:
        return all(len(row) == 1 or max(row) == min(row) for row in self.levels) and \
            len({row[0] for row in self.levels}) == 1

    def typical(self) -> float:
        """The level of a typical pixel: the mean over channels and the image's brightness."""
        arr = np.asarray(self.levels, dtype=np.float64)  # [C, K]
        w = np.asarray(self.weights if len(self.weights) == arr.shape[1] else [1.0] * arr.shape[1])
        return float((arr.mean(0) * w).sum() / max(w.sum(), 1e-12))

    def scaled(self, factor: float) -> NoiseLevel:
        """Every level times ``factor`` (the user's "more" or "less")."""
        return NoiseLevel(tuple(tuple(min(255.0, v * factor) for v in row) for row in self.levels), self.weights,
                          self.correlated)

    def channel(self, k: int) -> NoiseLevel:
        """The function of channel ``k`` alone (a gray model run on each channel of a colour image)."""
        return NoiseLevel((self.levels[k % self.channels],), self.weights, self.correlated)

    def to_dict(self) -> dict[str, object]:
        k = len(self.levels[0])
        return {"knots": [round((j + 0.5) / k, 4) for j in range(k)],
                "levels": [[round(v, 3) for v in row] for row in self.levels],
                "weights": [round(w, 4) for w in self.weights], "typical": round(self.typical(), 3),
                "correlated": round(self.correlated, 3)}

    def map_for(self, x: torch.Tensor, channels: int) -> torch.Tensor:
        """The per-pixel map [B, channels, H, W] (0-255) for image tiles x: [B, C, H, W] in [0, 1].

        The brightness is the (2 * MAP_BLUR + 1)^2 mean of the noisy pixels: the map then depends on
        at most MAP_BLUR pixels of context, which tiling adds to its margin."""
        b, c, h, w = x.shape
        lv = torch.tensor(self.levels, dtype=torch.float32)  # [L, K]
        if lv.shape[0] != c:
            lv = lv.mean(0, keepdim=True).expand(c, -1)  # [C, K]: one function for every channel
        k = lv.shape[1]
        if k == 1 or bool((lv == lv[:, :1]).all()):
            out = lv[:, 0].reshape(1, c, 1, 1).expand(b, c, h, w)  # [B, C, H, W]
        else:
            size = 2 * MAP_BLUR + 1
            bright = F.avg_pool2d(x.float(), size, stride=1, padding=MAP_BLUR, count_include_pad=False)
            pos = (bright.clamp(0, 1) * k - 0.5).clamp(0, k - 1)  # [B, C, H, W] in knot units
            i0 = pos.floor().long().clamp(max=k - 2)
            frac = pos - i0
            table = lv[None, :, None, :].expand(b, c, h, k)  # [B, C, H, K] (a view)
            lo = torch.gather(table, 3, i0)  # [B, C, H, W]
            hi = torch.gather(table, 3, i0 + 1)
            out = lo + (hi - lo) * frac
        if channels != c:
            out = out.mean(1, keepdim=True).expand(b, channels, h, w)  # [B, channels, H, W]
        return out.to(x.dtype).contiguous()


def _chi_quantile(q: float, dof: int) -> float:
    """The q-quantile of sqrt(chi2_dof / dof): where the sample std of pure noise falls."""
    from scipy.stats import chi2

    return math.sqrt(float(chi2.ppf(q, dof)) / dof)


def _plane_projection(block: int) -> np.ndarray:
    """[n, n] projection onto planes a + b*y + c*x over a block's n = block^2 pixels."""
    yy, xx = np.mgrid[0:block, 0:block]
    a = np.stack([np.ones(block * block), yy.ravel(), xx.ravel()], 1)  # [n, 3]
    return a @ np.linalg.pinv(a)  # [n, n]


def _block_stats(p: np.ndarray, block: int, rows: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(std about a fitted plane, mean) of every unclipped ``block`` x ``block`` block of p: [H, W],
    in bands of about ``rows`` rows (bounded memory on large photos). The plane takes out smooth
    shading, so a flat-enough block's std is the noise's pointwise level, correlated noise included
    up to the block's scale."""
    n = block * block
    proj = _plane_projection(block)
    w = p.shape[1] // block * block
    step = max(block, rows // block * block)
    stds, means = [], []
    for y0 in range(0, p.shape[0] // block * block, step):
        band = p[y0:y0 + step, :w]
        band = band[: band.shape[0] // block * block].astype(np.float64)
        blk = band.reshape(-1, block, w // block, block).transpose(0, 2, 1, 3).reshape(-1, n)  # [blocks, n]
        ok = ((blk == 0.0) | (blk == 1.0)).sum(1) <= 2  # clipped blocks have lost part of their noise
        blk = blk[ok]
        res = blk - blk @ proj.T
        stds.append(np.sqrt((res ** 2).sum(1) / (n - 3)))
        means.append(blk.mean(1))
    return (np.concatenate(stds), np.concatenate(means)) if stds else (np.zeros(0), np.zeros(0))


def _channel_levels(p: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """(level per bin, block count per bin) for one channel p: [H, W] in [0, 1] (0-1 scale)."""
    std, mean = _block_stats(p, block)
    levels, counts = np.full(BINS, np.nan), np.zeros(BINS, dtype=np.int64)
    which = np.clip((mean * BINS).astype(np.int64), 0, BINS - 1)
    correction = _chi_quantile(QUANTILE, block * block - 3)
    if std.size < MIN_BLOCKS:
        return levels, counts
    overall = float(np.quantile(std, QUANTILE)) / correction
    for j in range(BINS):
        sel = std[which == j]
        counts[j] = sel.size
        if sel.size >= MIN_BLOCKS:  # a few blocks give a noisy quantile: shrink towards the channel's level
            own = float(np.quantile(sel, QUANTILE)) / correction
            levels[j] = (sel.size * own + PRIOR_BLOCKS * overall) / (sel.size + PRIOR_BLOCKS)
    if not np.isfinite(levels).any():  # a small image: no bin on its own, the channel's level everywhere
        levels[:] = overall
    return levels, counts


def _table(a: np.ndarray, block: int, offset: int) -> NoiseLevel | None:
    """The binned levels of every channel of a: [H, W, C], with blocks starting ``offset`` pixels in."""
    rows, total = [], np.zeros(BINS)
    for c in range(a.shape[2]):
        levels, counts = _channel_levels(a[offset:, offset:, c], block)
        total += counts
        rows.append(_fill(levels) * 255.0)
    if total.sum() == 0 or not np.isfinite(np.asarray(rows)).all():
        return None
    weights = total / total.sum()
    return NoiseLevel(tuple(tuple(float(v) for v in row) for row in rows), tuple(float(w) for w in weights))


def _fill(levels: np.ndarray) -> np.ndarray:
    """Bins without enough blocks take the nearest measured bins' level (linear between them)."""
    known = np.flatnonzero(np.isfinite(levels))
    if known.size == 0:
        return np.zeros_like(levels)
    return np.interp(np.arange(levels.size), known, levels[known])


def estimate_noise_level(image: np.ndarray | torch.Tensor) -> NoiseLevel:
    """The noise-level function of an image ([H, W] or [H, W, C] float in [0, 1]), one row per channel.

    Two block sizes: 8x8 blocks on the JPEG grid tell white noise from correlated noise (see
    :func:`_calibrated`); 16x16 blocks off the grid measure correlated noise, whose coarse part a
    JPEG keeps in each 8x8 block's low frequencies (a PolyU photo whose noise is 3-4 reads 1-2 in
    8x8 blocks, 2.5-4.5 in 16x16 ones). A flat or tiny image gives the finest-band estimate."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    fine_blocks = _table(a, BLOCK, 0)
    if fine_blocks is None:
        from deepdenoise.noise.gaussian import estimate_sigma

        return NoiseLevel.constant(estimate_sigma(a), a.shape[2])
    return _calibrated(fine_blocks, _table(a, 2 * BLOCK, BLOCK // 2) or fine_blocks, a)


def _calibrated(blocks8: NoiseLevel, blocks16: NoiseLevel, a: np.ndarray) -> NoiseLevel:
    """The estimate from the block tables and the finest wavelet band.

    For white noise the finest diagonal band is the better judge of the level (it contains almost
    no image, so textured photos read +1 at sigma 25 where flat blocks read +2.5); for correlated
    noise it sees a fraction of it (0.4-0.5 on demosaiced noise, nearly nothing after JPEG). The
    ratio of the 8x8 blocks' level to the band's tells the two apart: below 1.2 the noise is taken
    as white and the 8x8 function keeps its shape at the band's level, above 1.5 the 16x16 blocks'
    function stands, and in between the two are blended. (On simulated camera noise of BSDS500
    training images the 16x16 level reads 0.96-1.2x the true pointwise level, higher at low noise
    where texture counts for more.)"""
    from deepdenoise.noise.gaussian import estimate_sigma

    typical = blocks8.typical()
    fine = estimate_sigma(a)
    if typical <= 0:
        return blocks8
    w = float(np.clip((typical / fine - 1.2) / 0.3, 0.0, 1.0)) if fine > 0 else 1.0
    white = np.asarray(blocks8.levels) * (fine / typical)  # [C, K]
    correlated = np.asarray(blocks16.levels)  # [C, K]
    levels = (1 - w) * white + w * correlated
    return NoiseLevel(tuple(tuple(float(v) for v in row) for row in levels), blocks8.weights, w)
