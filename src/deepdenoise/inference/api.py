"""The library's front door: ``denoise()`` on NumPy arrays and torch tensors.

Float arrays are taken in [0, 1] (as scikit-image does); uint8/uint16 arrays are scaled and the
result comes back in the dtype it came in. Gray images are [H, W]; colour [H, W, 3] (a torch
tensor may be [C, H, W] or [B, C, H, W]). ``denoise_with_info()`` returns a :class:`DenoiseResult`
with what was done (model, level given, backend, notes) beside the image.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from deepdenoise.defaults import NOISE_KINDS
from deepdenoise.errors import InputError, ModelError
from deepdenoise.inference.modes import Job, make_mode
from deepdenoise.inference.predictor import ENSEMBLES, Predictor
from deepdenoise.inference.tiling import DEFAULT_TILE
from deepdenoise.models import Denoiser
from deepdenoise.noise import estimate_sigma
from deepdenoise.noise.level import NoiseLevel, estimate_noise_level
from deepdenoise.weights.shipped import load_model, shipped_models

log = logging.getLogger(__name__)
DEFAULT_GRAY = ("default", "dncnn_s_sigma25")
DEFAULT_COLOR = ("default_color",)
CAMERA_MODEL = "camera"  # the shipped model for photos whose noise a camera made (demosaiced, compressed)
Progress = Callable[[int, int], None]


@lru_cache(maxsize=8)
def get_model(name: str) -> tuple[Denoiser, dict[str, Any]]:
    """A shipped model by name, loaded once (bounded: at most 8 kept)."""
    return load_model(name)


@dataclass
class DenoiseResult:
    """A denoised image and what was done to it."""

    image: Any  # the input's type, shape and dtype
    model: str
    sigma: float  # the typical noise level the model was given (0-255)
    sigma_estimated: bool
    backend: str
    noise: str
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # mode details: noise_level table, peak, ...

    @property
    def info(self) -> dict[str, Any]:
        """The report as a flat dict (CLI lines, JSON, the web service's headers)."""
        return {"model": self.model, "sigma": self.sigma, "sigma_estimated": self.sigma_estimated,
                "backend": self.backend, "notes": list(self.notes), "noise": self.noise, **self.extra}


@dataclass(frozen=True)
class Settings:
    """The user's choices for one call, checked once."""

    sigma: float | None = None
    noise: str = "auto"
    peak: float | None = None
    pd_stride: int = 2
    strength: float = 1.0
    noise_scale: float = 1.0
    density: float | None = None
    ensemble: int = 1  # passes over flips/rotations, averaged (1, 2, 4 or 8)

    def __post_init__(self) -> None:
        check_settings(self)


def _number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating))


def check_settings(s: Settings) -> None:
    """One-line :class:`InputError` for any value outside its range, before any work."""
    if s.sigma is not None and not (_number(s.sigma) and 0 <= float(s.sigma) <= 255):
        raise InputError(f"sigma must be between 0 and 255 (got {s.sigma})")
    if not _number(s.noise_scale) or not 0.05 <= s.noise_scale <= 20:
        raise InputError(f"noise_scale must be a number from 0.05 to 20 (got {s.noise_scale!r})")
    if not _number(s.strength) or not 0 <= s.strength <= 1:
        raise InputError(f"strength must be a number from 0 to 1 (got {s.strength!r})")
    if s.noise not in (*NOISE_KINDS, "real"):
        raise InputError(f"noise must be one of {', '.join(NOISE_KINDS)} (got {s.noise!r})")
    if isinstance(s.pd_stride, bool) or not isinstance(s.pd_stride, (int, np.integer)) or not 1 <= s.pd_stride <= 4:
        raise InputError(f"pd_stride must be an integer from 1 to 4 (got {s.pd_stride!r})")
    if s.peak is not None and s.noise != "poisson":
        raise InputError("peak applies to noise='poisson'")
    if s.density is not None and (s.noise != "impulse" or not _number(s.density) or not 0 < s.density < 1):
        raise InputError("density applies to noise='impulse' and is a fraction between 0 and 1")
    if isinstance(s.ensemble, bool) or s.ensemble not in ENSEMBLES:
        raise InputError(f"ensemble must be one of {', '.join(map(str, ENSEMBLES))} (got {s.ensemble!r})")
    if s.peak is not None and not (np.isfinite(s.peak) and 1e-3 <= s.peak <= 1e9):
        raise InputError(f"peak must be a number of photons from 0.001 to 1e9 (got {s.peak})")


def to_float(image: np.ndarray) -> np.ndarray:
    """[H, W] or [H, W, 3] uint8/uint16/float -> float32 in [0, 1] (a float32 input is not copied)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3) or a.size == 0:
        raise InputError(f"expected a [H, W] or [H, W, 3] image, got shape {np.shape(image)}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0
    if a.dtype.kind != "f":
        raise InputError(f"unsupported array dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise InputError("image contains NaN or infinite values")
    return a.astype(np.float32, copy=False)


def from_float(den: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The result in the input's dtype and shape."""
    if like.dtype == np.uint8:
        out: np.ndarray = np.round(np.clip(den, 0, 1) * 255).astype(np.uint8)
    elif like.dtype == np.uint16:
        out = np.round(np.clip(den, 0, 1) * 65535).astype(np.uint16)
    else:
        out = den.astype(like.dtype, copy=False)
    return out.reshape(like.shape)


def resolve_model_name(name: str | None, color: bool) -> str:
    """The shipped model for an image: the default for its kind, or ``name``. A colour image asked
    of a shipped gray model with a colour sibling (``fast`` -> ``fast_color``) gets the sibling:
    a colour model sees the three channels together (about 1 dB better than running the gray
    model on each channel, at a third of its cost)."""
    if name:
        if color and name in shipped_models() and f"{name}_color" in shipped_models():
            return f"{name}_color"
        return name
    shipped = shipped_models()
    for candidate in (DEFAULT_COLOR if color else ()) + DEFAULT_GRAY:
        if candidate in shipped:
            return candidate
    raise ModelError("no shipped model found in this installation")


def range_notes(meta: dict[str, Any], sigma: float, what: str = "noise level") -> list[str]:
    """A note when the noise level is well above what the model was trained on: it still runs, but
    a blind model trained on sigma <= 75 leaves much of sigma 150 in the image."""
    cfg = meta.get("training", {}).get("config", {}) if isinstance(meta.get("training"), dict) else {}
    top = cfg.get("sigma_max") or cfg.get("sigma")
    if top and sigma > 1.2 * float(top):
        return [f"{what} {sigma:.0f} is above the {float(top):g} this model was trained for: "
                "expect residual noise"]
    return []


LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601, as --gray uses


def keep_grain(noisy: np.ndarray, den: np.ndarray, strength: float, rows: int = 256) -> np.ndarray:
    """den plus (1 - strength) of the removed noise's luminance, in place on ``den`` ([H, W] or
    [H, W, 3]), in bands of ``rows`` (no full-size temporary). Chroma noise stays removed: it is
    what looks like a digital artefact, while a little luminance grain reads as film-like texture."""
    keep = 1.0 - strength
    for y in range(0, den.shape[0], rows):
        removed = noisy[y:y + rows] - den[y:y + rows]  # [rows, W(, 3)]
        if removed.ndim == 3:
            den[y:y + rows] += keep * (removed @ LUMA)[..., None]  # the same luminance on R, G and B
        else:
            den[y:y + rows] += keep * removed
    return den


BLIND_TOLERANCE = 0.85  # the finest-band estimate reads up to ~15% high on textured photos


def blind_keep(noisy: np.ndarray, told: float, extra: dict[str, Any]) -> float:
    """How much of the removed noise a blind model puts back when told a level ``told`` (0-255).

    A level clearly below the image's estimated noise s (by more than the estimate's own error,
    15%) removes only that much, as the noise-map models are trained to: the rest, of std
    sqrt(s^2 - t^2), is put back, a fraction sqrt(1 - t^2/s^2) of (noisy - denoised). A level above
    s cannot make a blind model remove more; ``extra["blind_estimate"]`` records s for the report."""
    est = estimate_sigma(noisy)
    extra["blind_estimate"] = est
    limit = est * BLIND_TOLERANCE
    return float(np.sqrt(1.0 - (told / limit) ** 2)) if 0 < told < limit else 0.0


def put_back(noisy: np.ndarray, den: np.ndarray, keep: float, rows: int = 256) -> np.ndarray:
    """den + keep * (noisy - den), in place on ``den``, in bands of ``rows`` (no full-size temporary)."""
    for y in range(0, den.shape[0], rows):
        den[y:y + rows] += keep * (noisy[y:y + rows] - den[y:y + rows])
    return den




def route(x: np.ndarray, model: str | Denoiser | None, s: Settings) -> tuple[str, str | Denoiser | None,
                                                                              NoiseLevel | None, list[str]]:
    """``noise='auto'``: white noise, except that a colour photo whose noise the estimate finds
    spatially correlated (as a camera's is) goes to the camera model when no model is named.
    Returns (noise kind, model, the estimate when made, notes)."""
    noise = "camera" if s.noise == "real" else s.noise
    if noise != "auto":
        return noise, model, None, []
    if model is None and x.ndim == 3 and s.sigma is None and CAMERA_MODEL in shipped_models():
        estimate = estimate_noise_level(x)
        if estimate.correlated >= 0.5:
            return "gaussian", CAMERA_MODEL, estimate, [
                "the noise is spatially correlated, as a camera's: used the camera model"]
        return "gaussian", model, estimate, []
    return "gaussian", model, None, []


def pick_model(model: str | Denoiser | None, color: bool) -> tuple[Denoiser, str, dict[str, Any]]:
    """(network, name, metadata) for a module, a shipped name, a weight path, or None (the default)."""
    if isinstance(model, Denoiser):
        return model.eval(), type(model).__name__, {}
    if model is not None and not isinstance(model, str):
        raise ModelError(f"model must be a name, a weight path or a Denoiser (got {type(model).__name__})")
    name = resolve_model_name(model, color)
    net, meta = get_model(name)
    return net, name, meta


def denoise_with_info(image: np.ndarray, sigma: float | None = None, model: str | Denoiser | None = None,
                      tile: int | None = DEFAULT_TILE, progress: Progress | None = None,
                      backend: str = "auto", overwrite_input: bool = False, device: str | torch.device | None = "auto",
                      **settings: Any) -> DenoiseResult:
    """Denoise an image array; the result's ``image`` has its type, shape and dtype. Arguments as
    :func:`denoise`."""
    s = Settings(sigma=sigma, **settings)
    a = np.asarray(image)
    x = to_float(a)
    noise, model, estimate, notes = route(x, model, s)
    net, name, meta = pick_model(model, x.ndim == 3)
    if net.takes_mask and s.noise == "auto":  # a network trained for impulses names the noise itself
        noise = "impulse"
    if net.takes_mask and noise != "impulse":
        raise InputError(f"{name} restores impulses from a mask of corrupted samples: use noise='impulse'")
    predictor = Predictor(net, backend, tile, device, s.ensemble)
    extra: dict[str, Any] = {"noise_scale": float(s.noise_scale)}
    if s.ensemble > 1:
        extra["ensemble"] = s.ensemble
    keep = 0.0  # a blind model told a level below its estimate keeps part of the noise: needs the noisy image
    if not net.noise_input and noise == "gaussian" and (sigma is not None or s.noise_scale != 1):
        keep = blind_keep(x, (sigma if sigma is not None else estimate_sigma(x)) * s.noise_scale, extra)
    # a converted copy (uint8/uint16 input) is ours to overwrite; the caller's float array only on request
    inplace = (overwrite_input or x is not a) and s.strength == 1 and keep == 0
    job = Job(predictor, meta, sigma, float(s.noise_scale), progress, inplace, estimate)
    done = make_mode(noise, s.peak, s.pd_stride, s.density).run(job, x)
    den = done.image
    if keep > 0:
        den = put_back(x, den, keep)
    if s.strength < 1:
        den = keep_grain(x, den, float(s.strength))
        extra["strength"] = float(s.strength)
    notes += range_notes(meta, done.sigma, "stabilised noise level" if noise == "poisson" else "noise level")
    for note in notes:
        log.debug(note)
    return DenoiseResult(from_float(den, a), name, done.sigma, sigma is None, predictor.backend, noise, notes,
                         {**extra, **done.extra})


def denoise(image: np.ndarray | torch.Tensor, sigma: float | None = None, model: str | Denoiser | None = None,
            tile: int | None = DEFAULT_TILE, **kw: Any) -> Any:
    """Denoise an image array or tensor; returns the same type, shape and dtype.

    sigma: noise level on the 0-255 scale, or None to estimate it (a noise-map model takes the
    estimated level brightness by brightness and channel by channel; a blind model told a level
    below its estimate removes only that much).
    model: a shipped name ('default', 'default_color', 'dncnn_s_sigma25'), a weight path, or a Denoiser.
    tile: tiles of this size (at least 4x the model's context margin) bound the memory on large
    images; the result is the same as whole-image inference. None: never tile.
    progress: called as progress(tiles_done, tiles_total) while a large image is processed.
    backend: 'auto' (int8 where the model ships a calibration and the CPU has VNNI, else 'folded'; on
    a GPU 'fp16'), 'eager' (fp32), 'folded', 'bf16', 'fp16', 'onnxruntime' or 'int8' (see
    :mod:`deepdenoise.inference.backends`).
    device: 'auto' (CUDA, then MPS, then the CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'.
    overwrite_input: a float32 input array may receive the result (saves a full-size buffer on
    very large images; the caller must not need the noisy array afterwards).
    noise: 'auto' (white noise, except a colour photo whose noise is spatially correlated, as a
    camera's, goes to the camera model when no model is named), 'gaussian', 'camera' (older name
    'real'; ``pd_stride`` for white-noise models), 'poisson' (``peak``: photons at full scale,
    ``sigma``: read noise; each estimated when omitted) or 'impulse' (``density``: the corrupted
    fraction, estimated when omitted). See :mod:`deepdenoise.inference.modes`.
    strength: how much of the luminance noise to remove (0-1); below 1 some of it is put back as
    fine grain. Colour noise is always removed.
    noise_scale: multiplies the noise level the model is given: above 1 removes more.
    """
    if not isinstance(image, torch.Tensor):
        return denoise_with_info(image, sigma, model, tile, **kw).image
    t = image.detach().float().cpu()
    if t.ndim == 4:
        return torch.stack([denoise(t[i], sigma, model, tile, **kw) for i in range(t.shape[0])]).to(image.dtype)
    arr = t.numpy() if t.ndim == 2 else np.moveaxis(t.numpy(), 0, -1)
    out = denoise_with_info(arr, sigma, model, tile, **kw).image
    res = torch.from_numpy(out if t.ndim == 2 else np.moveaxis(out, -1, 0).copy())
    return res.reshape(t.shape).to(image.dtype)
