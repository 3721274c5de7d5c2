"""What a network is given as its noise level, tile by tile."""

from __future__ import annotations

import torch

from deepdenoise.models import Denoiser
from deepdenoise.noise.level import NoiseLevel


def sigma_input(model: Denoiser, x: torch.Tensor,
                sigma: float | NoiseLevel | None) -> torch.Tensor | float | None:
    """What ``model(x, sigma)`` is given for a tile x: [B, C, H, W]: nothing for a blind model, a
    number as it is, and a noise-level function as its per-pixel map [B, M, H, W] for this tile."""
    if not model.noise_input or not isinstance(sigma, NoiseLevel):
        return sigma if not isinstance(sigma, NoiseLevel) and model.noise_input else None
    return sigma.map_for(x, model.map_channels)
