"""Bounds on model configs read from files, checked before anything is allocated.

A weight file's metadata decides what gets built; a hostile or damaged file could ask for a
million features or ten million layers (terabytes). Every integer field has a range here, the
types must match, and the parameter count (computed from the config alone) has a ceiling.
"""

from __future__ import annotations

from typing import Any

from deepdenoise.errors import ModelConfigError

MAX_PARAMETERS = 200_000_000  # ~0.8 GB in fp32; the largest shipped model has ~4 M

RANGES: dict[str, tuple[int, int]] = {
    "depth": (1, 200), "channels": (1, 4), "features": (1, 2048), "kernel_size": (1, 15),
    "unshuffle": (1, 8), "blocks": (0, 64), "map_channels": (1, 4), "keep_mean": (0, 64),
}


def _check_int(arch: str, key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelConfigError(f"{arch}: config '{key}' must be an integer (got {value!r:.40})")
    lo, hi = RANGES[key]
    if not lo <= value <= hi:
        raise ModelConfigError(f"{arch}: config '{key}' = {value} is outside {lo}..{hi}")


def check_config(arch: str, config: Any) -> None:
    """Raise :class:`ModelConfigError` unless ``config`` is a mapping of known-typed, bounded values."""
    if not isinstance(config, dict):
        raise ModelConfigError(f"{arch}: config must be a JSON object (got {type(config).__name__})")
    for key, value in config.items():
        if key in ("features", "blocks") and isinstance(value, (list, tuple)):
            if not 1 <= len(value) <= 8:
                raise ModelConfigError(f"{arch}: config '{key}' needs 1 to 8 levels (got {len(value)})")
            for v in value:
                _check_int(arch, key, v)
        elif key in RANGES:
            _check_int(arch, key, value)
        elif key in ("batch_norm", "noise_map", "mask_input") and not isinstance(value, bool):
            raise ModelConfigError(f"{arch}: config '{key}' must be true or false (got {value!r:.40})")
    params = estimate_parameters(arch, config)
    if params > MAX_PARAMETERS:
        raise ModelConfigError(f"{arch}: config asks for {params:,} parameters (limit {MAX_PARAMETERS:,})")


def estimate_parameters(arch: str, c: dict[str, Any]) -> int:
    """An upper estimate of the weights a config builds, from the config alone (no allocation)."""
    ch = int(c.get("channels", 1)) * int(c.get("unshuffle", 1)) ** 2 * 2 + int(c.get("map_channels", 1))
    if arch == "dncnn":
        f, k = int(c.get("features", 64)), int(c.get("kernel_size", 3))
        return k * k * f * (2 * ch + f * max(0, int(c.get("depth", 17)) - 2)) + 3 * f * int(c.get("depth", 17))
    feats = c.get("features", (64, 128, 256))
    feats = list(feats) if isinstance(feats, (list, tuple)) else [int(feats)]
    blocks = c.get("blocks", 2)
    per = list(blocks) if isinstance(blocks, (list, tuple)) else [int(blocks)] * len(feats)
    total = 9 * ch * feats[0] * 2
    for i, f in enumerate(feats):
        b = per[i] if i < len(per) else per[-1]
        total += 2 * b * 2 * 9 * f * f + (9 * f * feats[i + 1] * 2 if i + 1 < len(feats) else 0)
    return total
