"""Model registry: architectures by name, with named presets and tiny test presets.

``create_model("dncnn_s")`` builds an untrained network from a preset; ``load_model`` (in
:mod:`deepdenoise.hub`) adds weights. Every model follows one contract:
``forward(x: [B, C, H, W] in [0, 1], sigma=None) -> [B, C, H, W]``; blind models ignore sigma.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields
from typing import Any

from torch import nn

from deepdenoise.errors import ModelConfigError
from deepdenoise.models.dncnn import DnCNN, DnCNNConfig
from deepdenoise.models.limits import check_config
from deepdenoise.models.unet import UNetConfig, UNetDenoiser

ARCHITECTURES: dict[str, tuple[Callable[..., nn.Module], type]] = {
    "dncnn": (DnCNN, DnCNNConfig),
    "unet": (UNetDenoiser, UNetConfig),
}

# Named presets: (architecture, config overrides). Tiny presets exist so tests run in seconds.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "dncnn_s": ("dncnn", dict(depth=17, channels=1, features=64, batch_norm=True)),
    "dncnn_b": ("dncnn", dict(depth=20, channels=1, features=64, batch_norm=True)),
    "cdncnn_b": ("dncnn", dict(depth=20, channels=3, features=64, batch_norm=True)),
    "dncnn_tiny": ("dncnn", dict(depth=3, channels=1, features=8, batch_norm=True)),
    "dncnn_tiny_rgb": ("dncnn", dict(depth=3, channels=3, features=8, batch_norm=True)),
    "unet_s": ("unet", dict(channels=1, features=(64, 128, 256), blocks=2)),
    "unet_s_rgb": ("unet", dict(channels=3, features=(64, 128, 256), blocks=2)),
    "unet_tiny": ("unet", dict(channels=1, features=(8, 16), blocks=1)),
    "unet_tiny_rgb": ("unet", dict(channels=3, features=(8, 16), blocks=1)),
    # FFDNet-style: the DnCNN trunk at half resolution after a pixel-unshuffle (~4.6x fewer FLOPs)
    "ffdnet_s": ("dncnn", dict(depth=15, channels=1, features=64, batch_norm=True, unshuffle=2)),
    # fast presets: a 4-level U-Net at half resolution (~0.14 MFLOP/px, 11x fewer than DnCNN-S)
    "unet_fast": ("unet", dict(channels=1, features=(32, 64, 128, 256), blocks=2, unshuffle=2)),
    "unet_fast_rgb": ("unet", dict(channels=3, features=(32, 64, 128, 256), blocks=2, unshuffle=2)),
}


def model_config(name: str, **overrides: Any) -> tuple[str, dict[str, Any]]:
    """Resolve a preset name (or an architecture name) into (architecture, full config dict)."""
    if name in PRESETS:
        arch, cfg = PRESETS[name]
        cfg = {**cfg, **overrides}
    elif name in ARCHITECTURES:
        arch, cfg = name, dict(overrides)
    else:
        known = ", ".join(sorted(PRESETS))
        raise ModelConfigError(f"unknown model preset '{name}' (known: {known})")
    config_cls = ARCHITECTURES[arch][1]
    allowed = {f.name for f in fields(config_cls)}
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ModelConfigError(f"{name}: unknown config key(s) {', '.join(unknown)} "
                               f"(known: {', '.join(sorted(allowed))})")
    full = asdict(config_cls(**cfg))
    return arch, full


def build_model(arch: str, config: dict[str, Any]) -> nn.Module:
    """Build an untrained network of architecture ``arch`` from a config dict (no I/O).

    The config is checked (known keys, types, ranges, parameter count) before anything is built,
    since it may come from a file."""
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise ModelConfigError(f"unknown architecture {arch!r:.60}")
    model_cls, config_cls = ARCHITECTURES[arch]
    check_config(arch, config)
    unknown = sorted(set(config) - {f.name for f in fields(config_cls)})
    if unknown:
        raise ModelConfigError(f"{arch}: unknown config key(s) {', '.join(map(str, unknown))[:200]}")
    cfg = dict(config)
    if "features" in cfg and isinstance(cfg["features"], list):
        cfg["features"] = tuple(cfg["features"])
    try:
        return model_cls(config_cls(**cfg))
    except (ValueError, TypeError) as exc:  # a value the architecture rejects (e.g. one block count per level)
        raise ModelConfigError(f"{arch}: {exc}") from None


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build an untrained model from a named preset, e.g. ``create_model("dncnn_s")``."""
    arch, cfg = model_config(name, **overrides)
    return build_model(arch, cfg)


def list_presets() -> list[str]:
    return sorted(PRESETS)


__all__ = ["create_model", "build_model", "model_config", "list_presets", "DnCNN", "UNetDenoiser"]
