"""The contract every denoising network follows, so inference, export and training never guess.

``Denoiser.forward(x, sigma_map=None)`` takes x: [B, C, H, W] in [0, 1] of any height and width
(mirror-padded up to ``multiple`` and cropped back here, once for every architecture) and returns
the denoised [B, C, H, W]. Subclasses implement ``core`` on padded inputs and declare what they
are: image channels, whether they take a noise-level map (and how many map channels), how far
each output pixel sees (``receptive_radius``: the tile margin), and their size multiple. A blind
model (``noise_input`` False) is given no level: the caller estimates, never ignores.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepdenoise.models.padding import pad_to_multiple

SigmaInput = torch.Tensor | float | None  # a number, [B], [B, M] or a per-pixel [B, 1 or M, H, W] (0-255)


class Denoiser(nn.Module):
    """Base class of the networks: typed attributes instead of duck typing, one padding rule."""

    config: Any
    # int8 activation ranges (deepdenoise.inference.quant), set from a weight file's metadata
    int8_calibration: dict[str, Any] | None = None

    @property
    def in_channels(self) -> int:
        """Image channels (1 gray, 3 colour)."""
        return int(self.config.channels)

    @property
    def noise_input(self) -> bool:
        """Whether the network takes a noise-level map beside the image."""
        return False

    @property
    def map_channels(self) -> int:
        """Channels of the noise-level map (0 for a blind model)."""
        return 0

    @property
    def takes_mask(self) -> bool:
        """Whether the input carries a mask of corrupted samples after the image's channels: the
        network then sees ``input_channels`` = 2 x ``in_channels`` and returns ``in_channels``."""
        return False

    @property
    def input_channels(self) -> int:
        return self.in_channels * (2 if self.takes_mask else 1)

    @property
    def multiple(self) -> int:
        """Height and width ``core`` needs to be multiples of."""
        return 1

    @property
    def receptive_radius(self) -> int:
        """Pixels of context each output depends on (one side)."""
        raise NotImplementedError

    def flops_per_pixel(self) -> int:
        """Multiply-adds x 2 per output pixel (convolutions only)."""
        raise NotImplementedError

    def core(self, xp: torch.Tensor, sigma: SigmaInput = None) -> torch.Tensor:
        """The network on xp: [B, C, H', W'] whose sides are multiples of ``multiple``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, sigma_map: SigmaInput = None) -> torch.Tensor:
        _, _, h, w = x.shape  # x: [B, C, H, W]
        m = self.multiple
        if m == 1:
            return self.core(x, sigma_map)
        xp = pad_to_multiple(x, m)  # [B, C, H', W']
        if isinstance(sigma_map, torch.Tensor) and sigma_map.ndim == 4:
            sigma_map = pad_to_multiple(sigma_map, m)  # [B, 1 or M, H', W'] padded like the image
        return self.core(xp, sigma_map)[:, :, :h, :w]
