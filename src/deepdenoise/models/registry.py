"""The model registry: architectures by name (``@register_model``) and named presets
(``register_preset``), as timm's registry does, so a weight file's metadata (architecture + config)
rebuilds its network and a preset name builds an untrained one. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, fields
from typing import Any, TypeVar

from deepdenoise.errors import ModelConfigError
from deepdenoise.models.base import Denoiser
from deepdenoise.models.limits import check_config

ARCHITECTURES: dict[str, tuple[type[Denoiser], type]] = {}
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {}
D = TypeVar("D", bound=type[Denoiser])


def register_model(name: str, config_cls: type) -> Callable[[D], D]:
    """Class decorator: ``@register_model("unet", UNetConfig)`` makes the architecture buildable
    from metadata by name."""

    def wrap(cls: D) -> D:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} registered twice")
        ARCHITECTURES[name] = (cls, config_cls)
        return cls

    return wrap


def register_preset(name: str, arch: str, **config: Any) -> None:
    """A named configuration of a registered architecture (``create_model(name)``)."""
    if name in PRESETS:
        raise ValueError(f"preset {name!r} registered twice")
    PRESETS[name] = (arch, config)


def model_meta(model: Denoiser) -> dict[str, Any]:
    """What a weight file records to rebuild ``model``: its architecture name and config."""
    for arch, (cls, _) in ARCHITECTURES.items():
        if type(model) is cls:
            return {"architecture": arch, "config": asdict(model.config)}
    raise ValueError(f"unregistered model class {type(model).__name__}")

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


def build_model(arch: str, config: dict[str, Any]) -> Denoiser:
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


def create_model(name: str, **overrides: Any) -> Denoiser:
    """Build an untrained model from a named preset, e.g. ``create_model("dncnn_s")``."""
    arch, cfg = model_config(name, **overrides)
    return build_model(arch, cfg)


def list_presets() -> list[str]:
    return sorted(PRESETS)
