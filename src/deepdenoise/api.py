"""The library's front door: ``denoise()`` on NumPy arrays and torch tensors.

Float arrays are taken in [0, 1] (as scikit-image does); uint8/uint16 arrays are scaled and the
result comes back in the dtype it came in. Gray images are [H, W]; colour [H, W, 3] (a torch
tensor may be [C, H, W] or [B, C, H, W]).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from deepdenoise.backends import DEFAULT_BACKEND, resolve_backend
from deepdenoise.errors import InputError, ModelError
from deepdenoise.hub import load_model, shipped_models
from deepdenoise.inference import DEFAULT_TILE, apply_model, working_tile
from deepdenoise.noise import estimate_sigma

DEFAULT_GRAY = ("default", "dncnn_s_sigma25")
DEFAULT_COLOR = ("default_color",)
NOISE_KINDS = ("gaussian", "poisson", "real")


@lru_cache(maxsize=8)
def get_model(name: str) -> tuple[nn.Module, dict[str, Any]]:
    return load_model(name)


_FORWARDS: dict[tuple[int, str, float | None], Any] = {}


def get_forward(net: nn.Module, backend: str, sigma: float | None) -> Any:
    """A cached fast forward for (model, backend); blind models share one across sigmas."""
    from deepdenoise.backends import make_forward

    key = (id(net), backend, None if getattr(net, "blind", True) else sigma)
    if key not in _FORWARDS:
        _FORWARDS[key] = make_forward(net, backend, sigma)[0]
    return _FORWARDS[key]


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


def training_noise(meta: dict[str, Any]) -> str:
    """The noise a shipped model was trained on: 'gaussian', or 'camera' (simulated camera noise)."""
    training = meta.get("training")
    cfg = training.get("config", {}) if isinstance(training, dict) else {}
    return str(cfg.get("noise", "gaussian"))


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


def _check_sigma(sigma: float | None) -> None:
    if sigma is not None and not (0 <= float(sigma) <= 255):
        raise InputError(f"sigma must be between 0 and 255 (got {sigma})")


def denoise(
    image: np.ndarray | torch.Tensor, sigma: float | None = None, model: str | nn.Module | None = None,
    tile: int | None = DEFAULT_TILE, return_info: bool = False,
    progress: Callable[[int, int], None] | None = None, backend: str = DEFAULT_BACKEND,
    overwrite_input: bool = False, noise: str = "gaussian", peak: float | None = None,
    pd_stride: int = 2, strength: float = 1.0,
) -> Any:
    """Denoise an image array; returns the same type, shape and dtype.

    sigma: noise level on the 0-255 scale, or None to estimate it (blind models ignore it).
    model: a shipped name ('default', 'default_color', 'dncnn_s_sigma25'), a weight path, or a module.
    tile: tiles of this size (at least 4x the model's context margin) bound the memory on large
    images; the result is the same as whole-image inference. None: never tile.
    progress: called as progress(tiles_done, tiles_total) while a large image is processed.
    backend: 'auto' (int8 where the model ships a calibration and the CPU has VNNI, else 'folded'),
    'eager' (fp32), 'folded', 'bf16', 'onnxruntime' or 'int8' (see :mod:`deepdenoise.backends`).
    overwrite_input: a float32 input array may receive the result (saves a full-size buffer on
    very large images; the caller must not need the noisy array afterwards).
    noise: 'gaussian' (additive, one level) or 'poisson' (signal-dependent, photon-limited images:
    stabilised by the generalized Anscombe transform, see :mod:`deepdenoise.poisson`). With
    'poisson', ``peak`` is the photon count at full scale (1.0, 255 or 65535) and ``sigma`` the
    Gaussian read noise (0-255 scale); whichever is omitted is estimated from the image. 'real':
    a camera photo's noise (spatially correlated by demosaicing and JPEG), removed by pixel-shuffle
    down-sampling with stride ``pd_stride`` and refinement (:mod:`deepdenoise.realnoise`; 1 + stride^2
    network passes).
    strength: how much of the luminance noise to remove (0-1); below 1 some of it is put back as
    fine grain, which photos often look more natural with. Colour noise is always removed.
    """
    _check_sigma(sigma)
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating)) or not 0 <= strength <= 1:
        raise InputError(f"strength must be a number from 0 to 1 (got {strength!r})")
    if noise not in NOISE_KINDS:
        raise InputError(f"noise must be one of {', '.join(NOISE_KINDS)} (got {noise!r})")
    if isinstance(pd_stride, bool) or not isinstance(pd_stride, (int, np.integer)) or not 1 <= pd_stride <= 4:
        raise InputError(f"pd_stride must be an integer from 1 to 4 (got {pd_stride!r})")
    if peak is not None and noise != "poisson":
        raise InputError("peak applies to noise='poisson'")
    if peak is not None and not (np.isfinite(peak) and peak > 0):
        raise InputError(f"peak must be a positive number of photons (got {peak})")
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        shape = t.shape
        if t.ndim == 4:
            outs = [denoise(t[i], sigma, model, tile, backend=backend, noise=noise, peak=peak, pd_stride=pd_stride,
                            strength=strength)
                    for i in range(t.shape[0])]
            return torch.stack(outs).to(image.dtype)
        arr = t.numpy() if t.ndim == 2 else np.moveaxis(t.numpy(), 0, -1)
        res = denoise(arr, sigma, model, tile, return_info, backend=backend, noise=noise, peak=peak,
                      pd_stride=pd_stride, strength=strength)
        out_arr, info = res if return_info else (res, None)
        out = torch.from_numpy(out_arr if t.ndim == 2 else np.moveaxis(out_arr, -1, 0).copy())
        out = out.reshape(shape).to(image.dtype)
        return (out, info) if return_info else out
    a = np.asarray(image)
    dtype = a.dtype
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3) or a.size == 0:
        raise InputError(f"expected a [H, W] or [H, W, 3] image, got shape {image.shape}")
    if dtype == np.uint8:
        x = a.astype(np.float32, copy=False) / 255.0
    elif dtype == np.uint16:
        x = a.astype(np.float32, copy=False) / 65535.0
    elif dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise InputError("image contains NaN or infinite values")
        x = a.astype(np.float32, copy=False)
    else:
        raise InputError(f"unsupported array dtype {dtype}")
    color = x.ndim == 3
    meta: dict[str, Any] = {}
    if isinstance(model, nn.Module):
        net, name = model.eval(), type(model).__name__
    else:
        name = resolve_model_name(model, color)
        net, meta = get_model(name)
    backend = resolve_backend(net, backend)
    # a converted copy (uint8/uint16 input) is ours to overwrite; the caller's float array only on request
    inplace = (overwrite_input or x is not a) and strength == 1  # below 1 the noisy image is needed after

    def gaussian(img: np.ndarray, level: float) -> np.ndarray:
        forward = None if backend == "eager" else get_forward(net, backend, level)
        return apply_model(net, img, level, working_tile(net, tile), progress, forward, inplace=inplace)

    def real(img: np.ndarray, level: float) -> np.ndarray:
        from deepdenoise.realnoise import pd_denoise

        forward = None if backend == "eager" else get_forward(net, backend, level)
        tile_ = working_tile(net, tile)
        return pd_denoise(lambda im, tick: apply_model(net, im, level, tile_, tick, forward, inplace=True),
                          img, pd_stride, progress=progress)

    extra: dict[str, Any] = {"noise": noise}
    if noise == "poisson":
        from deepdenoise.poisson import NoiseModel, denoise_stabilised, estimate_noise_model

        nm = estimate_noise_model(x) if peak is None else NoiseModel.from_peak(peak, sigma or 0.0)
        if peak is None and sigma is not None:
            nm = NoiseModel(nm.a, (sigma / 255.0) ** 2)  # the read noise as given
        inplace = True  # gaussian() is called on the transformed image, a new array
        den, used_sigma = denoise_stabilised(x, nm, gaussian)
        extra.update(peak=nm.peak, read_sigma=nm.sigma, sigma_estimated=peak is None)  # sigma: stabilised level
    elif noise == "real":  # the level of the sub-images, where the noise is nearly white
        if training_noise(meta) == "camera":
            pd_stride = 1  # the model learned camera noise itself: pixel-shuffling would only hurt
        used_sigma = sigma if sigma is not None else estimate_sigma(x[::pd_stride, ::pd_stride])
        den = real(x, used_sigma)
        extra.update(pd_stride=pd_stride)
    else:
        used_sigma = sigma if sigma is not None else estimate_sigma(x)
        den = gaussian(x, used_sigma)
    if strength < 1:
        den = keep_grain(x, den, float(strength))
        extra.update(strength=float(strength))
    if dtype == np.uint8:
        result: np.ndarray = np.round(np.clip(den, 0, 1) * 255).astype(np.uint8)
    elif dtype == np.uint16:
        result = np.round(np.clip(den, 0, 1) * 65535).astype(np.uint16)
    else:
        result = den.astype(dtype, copy=False)
    result = result.reshape(np.asarray(image).shape)
    info = {"model": name, "sigma": float(used_sigma), "sigma_estimated": sigma is None, "backend": backend,
            "notes": range_notes(meta, float(used_sigma), "stabilised noise level" if noise == "poisson"
                                 else "noise level"), **extra}
    return (result, info) if return_info else result
