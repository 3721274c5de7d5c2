"""Denoising networks: the :class:`Denoiser` contract, the architectures, and their registry.

``create_model("dncnn_s")`` builds an untrained network from a named preset; weight files are
loaded by :mod:`deepdenoise.weights`. Every model follows one contract:
``forward(x: [B, C, H, W] in [0, 1], sigma_map=None) -> [B, C, H, W]``; blind models take no level.
"""

from __future__ import annotations

from deepdenoise.models.base import Denoiser, SigmaInput
from deepdenoise.models.dncnn import DnCNN, DnCNNConfig
from deepdenoise.models.registry import (
    ARCHITECTURES,
    PRESETS,
    build_model,
    create_model,
    list_presets,
    model_config,
    model_meta,
    register_model,
    register_preset,
)
from deepdenoise.models.unet import UNetConfig, UNetDenoiser

register_preset("dncnn_s", "dncnn", depth=17, channels=1, features=64, batch_norm=True)
register_preset("dncnn_b", "dncnn", depth=20, channels=1, features=64, batch_norm=True)
register_preset("cdncnn_b", "dncnn", depth=20, channels=3, features=64, batch_norm=True)
register_preset("dncnn_tiny", "dncnn", depth=3, channels=1, features=8, batch_norm=True)  # tiny: tests
register_preset("dncnn_tiny_rgb", "dncnn", depth=3, channels=3, features=8, batch_norm=True)
register_preset("unet_s", "unet", channels=1, features=(64, 128, 256), blocks=2)
register_preset("unet_s_rgb", "unet", channels=3, features=(64, 128, 256), blocks=2)
register_preset("unet_tiny", "unet", channels=1, features=(8, 16), blocks=1)
register_preset("unet_tiny_rgb", "unet", channels=3, features=(8, 16), blocks=1)
# FFDNet-style: the DnCNN trunk at half resolution after a pixel-unshuffle (~4.6x fewer FLOPs)
register_preset("ffdnet_s", "dncnn", depth=15, channels=1, features=64, batch_norm=True, unshuffle=2)
# fast presets: a 4-level U-Net at half resolution (~0.14 MFLOP/px, 11x fewer than DnCNN-S)
register_preset("unet_fast", "unet", channels=1, features=(32, 64, 128, 256), blocks=2, unshuffle=2)
register_preset("unet_fast_rgb", "unet", channels=3, features=(32, 64, 128, 256), blocks=2, unshuffle=2)

__all__ = ["Denoiser", "SigmaInput", "DnCNN", "DnCNNConfig", "UNetConfig", "UNetDenoiser", "ARCHITECTURES",
           "PRESETS", "build_model", "create_model", "list_presets", "model_config", "model_meta",
           "register_model", "register_preset"]
