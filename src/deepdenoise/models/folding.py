"""Batch-norm folding: each Conv2d -> BatchNorm2d pair of a trained DnCNN becomes one Conv2d with
a bias (eval statistics), the same function with fewer operations, for inference and export."""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from deepdenoise.models.base import Denoiser
from deepdenoise.models.dncnn import DnCNN


def fold_batchnorm(model: Denoiser) -> Denoiser:
    """A copy of ``model`` where every Conv2d -> BatchNorm2d pair is one Conv2d with bias (eval)."""
    if not isinstance(model, DnCNN) or not model.config.batch_norm:
        return copy.deepcopy(model).eval()
    cfg = model.config
    folded = DnCNN(dataclasses.replace(cfg, batch_norm=False)).eval()
    src = list(model.body)
    convs_out = [m for m in folded.body if isinstance(m, nn.Conv2d)]
    k = 0
    with torch.no_grad():
        for i, m in enumerate(src):
            if not isinstance(m, nn.Conv2d):
                continue
            w = m.weight.clone()  # [O, I, k, k]
            b = m.bias.clone() if m.bias is not None else torch.zeros(m.out_channels)
            nxt = src[i + 1] if i + 1 < len(src) else None
            if isinstance(nxt, nn.BatchNorm2d):
                mean, var = nxt.running_mean, nxt.running_var
                assert mean is not None and var is not None
                scale = nxt.weight / torch.sqrt(var + nxt.eps)  # [O]
                w = w * scale[:, None, None, None]
                b = (b - mean) * scale + nxt.bias
            conv = convs_out[k]
            conv.weight.copy_(w)
            assert conv.bias is not None
            conv.bias.copy_(b)
            k += 1
    return folded
