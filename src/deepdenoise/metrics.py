"""Image quality metrics with the standard protocol: the output is clipped to [0, 1] first."""

from __future__ import annotations

import math

import numpy as np
import torch


def psnr(output: torch.Tensor | np.ndarray, clean: torch.Tensor | np.ndarray) -> float:
    """PSNR in dB of ``output`` clipped to [0, 1] against ``clean`` (peak 1), over all channels."""
    o = torch.as_tensor(np.asarray(output) if not isinstance(output, torch.Tensor) else output)
    c = torch.as_tensor(np.asarray(clean) if not isinstance(clean, torch.Tensor) else clean)
    mse = torch.mean((o.double().clamp(0, 1) - c.double()) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def batch_psnr(output: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per-sample PSNR [B] of clipped outputs [B, C, H, W]."""
    mse = ((output.float().clamp(0, 1) - clean.float()) ** 2).mean(dim=(1, 2, 3))  # [B]
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-12))


def ssim(output: np.ndarray, clean: np.ndarray) -> float:
    """SSIM (scikit-image, Wang et al. 2004 with Gaussian weights) of the clipped output.

    ``output`` and ``clean`` are [H, W] or [H, W, C] arrays in [0, 1].
    """
    from skimage.metrics import structural_similarity

    o = np.clip(np.asarray(output, dtype=np.float64), 0, 1)
    c = np.asarray(clean, dtype=np.float64)
    kwargs: dict[str, object] = dict(data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    side = min(o.shape[:2])
    if side < 11:  # too small for the 11x11 Gaussian window: largest odd uniform window that fits
        if side < 3:
            return float("nan")
        kwargs = dict(data_range=1.0, win_size=side - (1 - side % 2))
    if o.ndim == 3:
        return float(structural_similarity(o, c, channel_axis=2, **kwargs))
    return float(structural_similarity(o, c, **kwargs))
