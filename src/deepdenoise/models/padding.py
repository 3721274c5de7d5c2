"""Padding an image up to a network's size multiple (U-Nets, half-resolution trunks).

Mirror (reflect) padding, not edge replication: replicated rows are a noise-free-looking streak
that no training crop contains, and a network with a large receptive field carries the error far
into the image (measured on BSD68 at sigma 25: +0.1 dB per image for the shipped U-Net, up to
+4 dB for the half-resolution one). Images too small to mirror fall back to replication.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """x: [B, C, H, W] -> [B, C, H', W'] with H', W' the next multiples, padded at bottom/right."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)  # [B, C, H + ph, W + pw]
