"""DnCNN (Zhang et al., TIP 2017): a plain conv stack that predicts the noise residual.

Residual learning is why it trains fast and well: the network estimates R and the clean image is
x = y - R. With ``batch_norm=False`` every conv has a bias; this is also the form of the official
MatConvNet weights (batch norm folded in) and of our folded fast-inference path.

``unshuffle=2`` gives the FFDNet-style trunk: the image is pixel-unshuffled into 4x the channels at
half resolution, the conv stack runs there (about 4x fewer FLOPs per pixel for the same depth and
width, and twice the receptive field), and the residual is pixel-shuffled back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepdenoise.models.base import Denoiser, SigmaInput
from deepdenoise.models.registry import register_model


@dataclass
class DnCNNConfig:
    depth: int = 17
    channels: int = 1
    features: int = 64
    batch_norm: bool = True
    kernel_size: int = 3
    unshuffle: int = 1  # 2: FFDNet-style trunk at half resolution

    @property
    def receptive_radius(self) -> int:
        u = self.unshuffle
        return u * self.depth * (self.kernel_size // 2) + (u - 1)


@register_model("dncnn", DnCNNConfig)
class DnCNN(Denoiser):
    def __init__(self, config: DnCNNConfig | None = None) -> None:
        super().__init__()
        self.config = config or DnCNNConfig()
        c = self.config
        pad = c.kernel_size // 2
        io_ch = c.channels * c.unshuffle**2  # channels the trunk sees (after pixel-unshuffle)
        layers: list[nn.Module] = [nn.Conv2d(io_ch, c.features, c.kernel_size, padding=pad)]
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
            nn.Conv2d(c.features, io_ch, c.kernel_size, padding=pad, bias=not c.batch_norm)
        )
        self.body = nn.Sequential(*layers)

    @property
    def receptive_radius(self) -> int:
        return self.config.receptive_radius

    @property
    def multiple(self) -> int:
        return self.config.unshuffle

    def flops_per_pixel(self) -> int:
        c = self.config
        k2 = c.kernel_size**2
        io_ch = c.channels * c.unshuffle**2
        inner = (c.depth - 2) * c.features * c.features * k2
        return 2 * (io_ch * c.features * k2 + inner + c.features * io_ch * k2) // c.unshuffle**2

    def core(self, x: torch.Tensor, sigma: SigmaInput = None) -> torch.Tensor:
        """The network on an input whose height and width are multiples of ``self.multiple``."""
        u = self.config.unshuffle
        if u == 1:
            return x - self.body(x)  # x: [B, C, H, W]; body(x): predicted noise R, [B, C, H, W]
        r = self.body(F.pixel_unshuffle(x, u))  # [B, C*u*u, H/u, W/u] noise at half resolution
        return x - F.pixel_shuffle(r, u)  # [B, C, H, W]
