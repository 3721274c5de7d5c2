"""A small residual U-Net denoiser (DRUNet-style, without batch norm), blind by default.

Why a U-Net: most of its compute runs at 1/2 and 1/4 resolution, so it sees a much larger
context than DnCNN's 35x35 window for fewer FLOPs per pixel. With ``noise_map=True`` it takes a
noise-level map as extra input channels (FFDNet/DRUNet conditioning): ``map_channels`` of them
(one per colour channel, since a camera's blue channel is often twice as noisy as its green), a
number, a level per image [B] or per channel [B, M], or a per-pixel map [B, 1 or M, H, W], so the
level a user gives (or the one estimated from the photo, brightness by brightness) steers how
much is removed. Blind models ignore sigma entirely. ``unshuffle=2`` runs the whole U-Net at half
resolution after a pixel-unshuffle (FFDNet's trick): 4x fewer FLOPs per pixel, for the fast presets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepdenoise.models.base import Denoiser, SigmaInput
from deepdenoise.models.registry import register_model


@dataclass
class UNetConfig:
    channels: int = 1
    features: tuple[int, ...] = (64, 128, 256)
    blocks: int | tuple[int, ...] = 2  # residual blocks per level (encoder and decoder each), or one per level
    noise_map: bool = False
    map_channels: int = 1  # noise-map channels (noise_map models): 1, or one per image channel
    unshuffle: int = 1  # 2: the U-Net runs at half resolution on pixel-unshuffled channels
    mask_input: bool = False  # the input carries a mask of corrupted samples after the image (impulse noise)
    keep_mean: int = 0  # > 0: the local mean of the input is kept (Gaussian of this sigma, pixels; see keep_local_mean)

    def __post_init__(self) -> None:  # JSON/YAML give lists
        self.features = tuple(self.features)
        if not isinstance(self.blocks, int):
            self.blocks = tuple(self.blocks)


class ResBlock(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1, bias=False)
        # quantization points (identity; deepdenoise.inference.quant puts int8 fake-quantizers here)
        self.q_hidden, self.q_res, self.q_out = nn.Identity(), nn.Identity(), nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.q_out(x + self.q_res(self.conv2(self.q_hidden(F.relu(self.conv1(x))))))


def local_mean(x: torch.Tensor, sigma: int) -> torch.Tensor:
    """Gaussian-weighted local mean of x [B, C, H, W] (separable, truncated at 3 sigma), normalised
    by the weight inside the image so borders are averages of what is there.

    Why a model keeps the input's local mean (``keep_mean``): noise has zero mean, so a denoiser
    should change fine detail, never the brightness of a region. A camera photo's tone curve makes
    the noisy image a little darker than the noise-free rendering a model is trained towards, and
    what it learns from that moves real photos' colours (+0.6 levels in red on PolyU-Canon, where
    the reference is the mean of many shots through the same curve)."""
    r = 3 * sigma
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()  # [2r+1]
    kx, ky = k.view(1, 1, 1, -1), k.view(1, 1, -1, 1)  # fixed shapes (exportable)

    def blur(z: torch.Tensor) -> torch.Tensor:  # [N, 1, H, W]
        return F.conv2d(F.conv2d(z, kx, padding=(0, r)), ky, padding=(r, 0))

    b, c, h, w = x.shape
    planes = x.reshape(b * c, 1, h, w)  # [B*C, 1, H, W]
    return (blur(planes) / blur(torch.ones_like(planes[:1]))).reshape(b, c, h, w)  # [B, C, H, W]


@register_model("unet", UNetConfig)
class UNetDenoiser(Denoiser):
    @property
    def level_blocks(self) -> tuple[int, ...]:
        """Residual blocks at each level, finest first (an int config means the same everywhere)."""
        b, n = self.config.blocks, len(self.config.features)
        if isinstance(b, int):
            return (b,) * n
        if len(b) != n:
            raise ValueError(f"blocks {tuple(b)} must give one count per level ({n} levels)")
        return tuple(int(k) for k in b)

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        c = self.config
        f = list(c.features)
        nb = self.level_blocks
        io_ch = c.channels * c.unshuffle**2  # image channels the U-Net sees
        in_ch = io_ch * (2 if c.mask_input else 1) + (c.map_channels if c.noise_map else 0)
        self.head = nn.Conv2d(in_ch, f[0], 3, padding=1, bias=False)
        self.down = nn.ModuleList()
        self.enc = nn.ModuleList()
        for i in range(len(f) - 1):
            self.enc.append(nn.Sequential(*[ResBlock(f[i]) for _ in range(nb[i])]))
            self.down.append(nn.Conv2d(f[i], f[i + 1], 2, stride=2, bias=False))
        self.mid = nn.Sequential(*[ResBlock(f[-1]) for _ in range(nb[-1])])
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(len(f) - 1)):
            self.up.append(nn.ConvTranspose2d(f[i + 1], f[i], 2, stride=2, bias=False))
            self.dec.append(nn.Sequential(*[ResBlock(f[i]) for _ in range(nb[i])]))
        self.tail = nn.Conv2d(f[0], io_ch, 3, padding=1, bias=False)
        # quantization points after the head, each down/up-sampling and each skip addition
        # (identity, no parameters: see deepdenoise.inference.quant)
        self.q_head = nn.Identity()
        self.q_down = nn.ModuleList(nn.Identity() for _ in self.down)
        self.q_up = nn.ModuleList(nn.Identity() for _ in self.up)
        self.q_skip = nn.ModuleList(nn.Identity() for _ in self.up)

    @property
    def multiple(self) -> int:
        return self.config.unshuffle * 2 ** (len(self.config.features) - 1)

    @property
    def receptive_radius(self) -> int:
        """Pixels of context each output depends on (one side): tiles need this much margin.

        3x3 convs add ``scale`` per conv at their level; each 2x2 down/up-sampling adds at most
        ``scale`` of the finer level; head and tail convs add 1 each.
        """
        c = self.config
        nb = self.level_blocks
        radius, scale = 2, 1  # head + tail
        for i in range(len(nb) - 1):  # encoder, down, and the matching up + decoder
            radius += 2 * (2 * nb[i] * scale) + 2 * scale
            scale *= 2
        radius += 2 * nb[-1] * scale  # the middle
        return c.unshuffle * radius + c.unshuffle - 1 + 3 * c.keep_mean

    def flops_per_pixel(self) -> int:
        c = self.config
        f = list(c.features)
        io_ch = c.channels * c.unshuffle**2
        in_ch = io_ch * (2 if c.mask_input else 1) + (c.map_channels if c.noise_map else 0)
        total = 2 * 9 * in_ch * f[0] + 2 * 9 * f[0] * io_ch
        area = 1.0
        for i, feat in enumerate(f):
            n_blocks = self.level_blocks[i] * (1 if i == len(f) - 1 else 2)
            total += int(area * n_blocks * 2 * 2 * 9 * feat * feat)
            if i < len(f) - 1:
                total += int(area / 4 * 2 * 2 * 4 * feat * f[i + 1])  # down + up convs
            area /= 4
        return total // c.unshuffle**2

    @property
    def noise_input(self) -> bool:
        return bool(self.config.noise_map)

    @property
    def map_channels(self) -> int:
        return int(self.config.map_channels) if self.config.noise_map else 0

    @property
    def takes_mask(self) -> bool:
        return bool(self.config.mask_input)

    def noise_map_input(self, sigma: SigmaInput, inp: torch.Tensor) -> torch.Tensor:
        """The map channels for the trunk's input ``inp`` [B, *, h, w] (0-1 scale): [B, M, h, w].

        A per-pixel map comes at image resolution and is averaged down to the trunk's (FFDNet's
        down-sampled map); a number, [B] or [B, M] is spread over the image."""
        if sigma is None:
            raise ValueError("this model needs a noise level: pass sigma (0-255 scale)")
        c, (b, _, h, w) = self.config, inp.shape
        s = torch.as_tensor(sigma, dtype=inp.dtype, device=inp.device)
        if s.ndim == 4:  # [B, 1 or M, H', W']
            if c.unshuffle > 1:
                s = F.avg_pool2d(s, c.unshuffle)  # [B, 1 or M, h, w]
            return (s / 255.0).expand(b, c.map_channels, h, w)
        s = s.reshape(-1, s.shape[-1] if s.ndim == 2 else 1, 1, 1)  # [B or 1, 1 or M, 1, 1]
        return (s / 255.0).expand(b, c.map_channels, h, w)  # [B, M, h, w]

    def core(self, xp: torch.Tensor, sigma: SigmaInput = None) -> torch.Tensor:
        """The network on an input whose height and width are multiples of ``self.multiple``."""
        u = self.config.unshuffle
        inp = F.pixel_unshuffle(xp, u) if u > 1 else xp  # [B, C*u*u (x2 with a mask), H'/u, W'/u]
        if self.config.noise_map:
            inp = torch.cat([inp, self.noise_map_input(sigma, inp)], dim=1)  # [B, C*u*u+M, H'/u, W'/u]
        y = self.q_head(self.head(inp))  # [B, F0, H', W']
        skips = []
        for enc, down, q_down in zip(self.enc, self.down, self.q_down):
            y = enc(y)
            skips.append(y)
            y = q_down(down(y))  # [B, F(i+1), H/2^(i+1), W/2^(i+1)]
        y = self.mid(y)
        for up, dec, q_up, q_skip in zip(self.up, self.dec, self.q_up, self.q_skip):
            y = dec(q_skip(q_up(up(y)) + skips.pop()))
        noise = self.tail(y)  # [B, C*u*u, H'/u, W'/u] predicted noise
        if u > 1:
            noise = F.pixel_shuffle(noise, u)  # [B, C, H', W']
        if self.config.keep_mean:
            noise = noise - local_mean(noise, self.config.keep_mean)  # [B, C, H', W']
        return xp[:, : self.config.channels] - noise  # the image part: a mask's channels are input only
