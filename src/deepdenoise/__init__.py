"""deepdenoise: remove noise from photos and scientific images with deep CNNs."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from deepdenoise.defaults import VERSION

__version__ = VERSION
_LAZY = {"denoise": "deepdenoise.inference.api", "denoise_with_info": "deepdenoise.inference.api",
         "Predictor": "deepdenoise.inference.predictor", "load_model": "deepdenoise.weights.shipped",
         "save_weights": "deepdenoise.weights.format", "shipped_models": "deepdenoise.weights.shipped",
         "psnr": "deepdenoise.metrics", "ssim": "deepdenoise.metrics", "create_model": "deepdenoise.models",
         "add_gaussian_noise": "deepdenoise.noise", "add_noise_numpy": "deepdenoise.noise",
         "estimate_sigma": "deepdenoise.noise"}
__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    """The public functions, imported on first use: importing the package (and so the command
    line) does not load torch until a command needs it."""
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deepdenoise' has no attribute {name!r}")
