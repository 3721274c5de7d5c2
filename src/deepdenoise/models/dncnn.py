"""DnCNN (Zhang et al., TIP 2017): a plain conv stack that predicts the noise residual.

Residual learning is why it trains fast and well: the network estimates R and the clean image is
x = y - R. With ``batch_norm=False`` every conv has a bias; this is also the form of the official
MatConvNet weights (batch norm folded in) and of our folded fast-inference path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DnCNNConfig:
    depth: int = 17
    channels: int = 1
    features: int = 64
    batch_norm: bool = True
    kernel_size: int = 3

    @property
    def receptive_radius(self) -> int:
        return self.depth * (self.kernel_size // 2)


class DnCNN(nn.Module):
    blind = True

    def __init__(self, config: DnCNNConfig | None = None) -> None:
        super().__init__()
        self.config = config or DnCNNConfig()
        c = self.config
        pad = c.kernel_size // 2
        layers: list[nn.Module] = [nn.Conv2d(c.channels, c.features, c.kernel_size, padding=pad)]
        layers.append(nn.ReLU(inplace=True))
        for _ in range(c.depth - 2):
            layers.append(
                nn.Conv2d(c.features, c.features, c.kernel_size, padding=pad, bias=not c.batch_norm)
            )
            if c.batch_norm:
                # eps as in the reference implementation; PyTorch's default momentum (0.1): the
                # reference's 0.9 makes the running statistics those of the last batch alone.
                layers.append(nn.BatchNorm2d(c.features, eps=1e-4))
            layers.append(nn.ReLU(inplace=True))
        layers.append(
            nn.Conv2d(c.features, c.channels, c.kernel_size, padding=pad, bias=not c.batch_norm)
        )
        self.body = nn.Sequential(*layers)

    @property
    def receptive_radius(self) -> int:
        return self.config.receptive_radius

    def flops_per_pixel(self) -> int:
        """Multiply-adds x 2 per output pixel (convolutions only)."""
        c = self.config
        k2 = c.kernel_size**2
        inner = (c.depth - 2) * c.features * c.features * k2
        return 2 * (c.channels * c.features * k2 + inner + c.features * c.channels * k2)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float | None = None) -> torch.Tensor:
        # x: [B, C, H, W] noisy image; body(x): [B, C, H, W] predicted noise R
        return x - self.body(x)
