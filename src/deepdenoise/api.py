"""The library's front door: ``denoise()`` on NumPy arrays and torch tensors.

Float arrays are taken in [0, 1] (as scikit-image does); uint8/uint16 arrays are scaled and the
result comes back in the dtype it came in. Gray images are [H, W]; colour [H, W, 3] (a torch
tensor may be [C, H, W] or [B, C, H, W]).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from deepdenoise.backends import DEFAULT_BACKEND, resolve_backend
from deepdenoise.defaults import NOISE_KINDS  # noqa: F401  (re-exported)
from deepdenoise.errors import InputError, ModelError
from deepdenoise.hub import load_model, shipped_models
from deepdenoise.inference import DEFAULT_TILE, apply_model, working_tile
from deepdenoise.noise import estimate_sigma
from deepdenoise.noiselevel import NoiseLevel, estimate_noise_level, takes_map

DEFAULT_GRAY = ("default", "dncnn_s_sigma25")
DEFAULT_COLOR = ("default_color",)
CAMERA_MODEL = "camera"  # the shipped model for photos whose noise a camera made (demosaiced, compressed)


@lru_cache(maxsize=8)
def get_model(name: str) -> tuple[nn.Module, dict[str, Any]]:
    return load_model(name)


_FORWARDS: OrderedDict[tuple[str, str], Any] = OrderedDict()
FORWARDS_KEEP = 4  # prepared forwards kept (a folded copy or an onnxruntime session each)


def weights_digest(net: nn.Module) -> str:
    """A digest of a module's class, config and weights: the key of what is prepared from it.
    (Not ``id()``: Python reuses the id of a freed module for the next one.)"""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    h.update(type(net).__name__.encode())
    h.update(repr(getattr(net, "config", None)).encode())
    h.update(repr(getattr(net, "int8_calibration", None)).encode())  # int8 ranges make another graph
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def get_forward(net: nn.Module, backend: str) -> Any:
    """A prepared forward ``f(x, sigma)`` for (weights, backend), from a small LRU cache."""
    from deepdenoise.backends import make_forward

    key = (weights_digest(net), backend)
    if key in _FORWARDS:
        _FORWARDS.move_to_end(key)
    else:
        _FORWARDS[key] = make_forward(net, backend)[0]
        while len(_FORWARDS) > FORWARDS_KEEP:
            _FORWARDS.popitem(last=False)
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


def _check_sigma(sigma: float | None) -> None:
    if sigma is not None and not (0 <= float(sigma) <= 255):
        raise InputError(f"sigma must be between 0 and 255 (got {sigma})")


def noise_level_for(net: nn.Module, x: np.ndarray, sigma: float | None, scale: float = 1.0,
                    pd_stride: int = 1, estimate: NoiseLevel | None = None) -> float | NoiseLevel:
    """The level ``net`` is given for image x: a noise-map model gets ``sigma`` (one level, every
    channel) or the image's estimated noise-level function, times ``scale``; a blind model ignores
    the level, which is then only reported (the finest-band estimate, on the PD sub-image)."""
    channels = x.shape[2] if x.ndim == 3 else 1
    if takes_map(net):
        level = NoiseLevel.constant(sigma, channels) if sigma is not None else estimate or estimate_noise_level(x)
        return level.scaled(scale) if scale != 1 else level
    if sigma is not None:
        return float(sigma) * scale
    return estimate_sigma(x[::pd_stride, ::pd_stride]) * scale


def estimate_gain(meta: dict[str, Any], sigma: float | None) -> float:
    """What a model's estimated level is multiplied by (1 when the user gave ``sigma``): a model
    trained on simulated noise may want a higher level than the estimate reads on real photos,
    measured on held-out real pairs and recorded in its metadata as ``estimate_gain``."""
    gain = meta.get("estimate_gain", 1.0) if sigma is None else 1.0
    return float(gain) if isinstance(gain, (int, float)) and 0.1 <= gain <= 10 else 1.0


def typical_level(level: float | NoiseLevel) -> float:
    return level.typical() if isinstance(level, NoiseLevel) else float(level)


def level_info(level: float | NoiseLevel) -> dict[str, Any]:
    """What the result reports of a noise-level function (its table), for the CLI, page and headers."""
    return {"noise_level": level.to_dict()} if isinstance(level, NoiseLevel) and not level.is_constant else {}


def denoise(
    image: np.ndarray | torch.Tensor, sigma: float | None = None, model: str | nn.Module | None = None,
    tile: int | None = DEFAULT_TILE, return_info: bool = False,
    progress: Callable[[int, int], None] | None = None, backend: str = DEFAULT_BACKEND,
    overwrite_input: bool = False, noise: str = "auto", peak: float | None = None,
    pd_stride: int = 2, strength: float = 1.0, noise_scale: float = 1.0, density: float | None = None,
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
    noise: 'auto' (the default: 'gaussian', except that a colour photo whose noise the estimate finds
    spatially correlated, as a camera's is, goes to the camera model when no model is named),
    'gaussian' (additive, white) or 'poisson' (signal-dependent, photon-limited images:
    stabilised by the generalized Anscombe transform, see :mod:`deepdenoise.poisson`). With
    'poisson', ``peak`` is the photon count at full scale (1.0, 255 or 65535) and ``sigma`` the
    Gaussian read noise (0-255 scale); whichever is omitted is estimated from the image. 'real':
    a camera photo's noise (spatially correlated by demosaicing and JPEG), removed by pixel-shuffle
    down-sampling with stride ``pd_stride`` and refinement (:mod:`deepdenoise.realnoise`; 1 + stride^2
    network passes).
    strength: how much of the luminance noise to remove (0-1); below 1 some of it is put back as
    fine grain, which photos often look more natural with. Colour noise is always removed.
    noise_scale: multiplies the noise level the model is given (estimated or ``sigma``): above 1
    removes more, below 1 keeps more detail.
    noise='impulse': salt-and-pepper, random-valued impulses, bit errors, hot/dead pixels. The
    corrupted samples are found (``density``: their expected fraction, estimated if omitted) and
    only they are restored (:mod:`deepdenoise.impulse`); Gaussian noise mixed in (``sigma``, or
    measured on the trusted samples) is removed in the same call. Noise-map models (all shipped defaults) take the
    estimated level brightness by brightness and channel by channel (:mod:`deepdenoise.noiselevel`).
    """
    _check_sigma(sigma)
    if isinstance(noise_scale, bool) or not isinstance(noise_scale, (int, float, np.floating)) \
            or not 0.05 <= noise_scale <= 20:
        raise InputError(f"noise_scale must be a number from 0.05 to 20 (got {noise_scale!r})")
    if isinstance(strength, bool) or not isinstance(strength, (int, float, np.floating)) or not 0 <= strength <= 1:
        raise InputError(f"strength must be a number from 0 to 1 (got {strength!r})")
    if noise not in NOISE_KINDS:
        raise InputError(f"noise must be one of {', '.join(NOISE_KINDS)} (got {noise!r})")
    if isinstance(pd_stride, bool) or not isinstance(pd_stride, (int, np.integer)) or not 1 <= pd_stride <= 4:
        raise InputError(f"pd_stride must be an integer from 1 to 4 (got {pd_stride!r})")
    if peak is not None and noise != "poisson":
        raise InputError("peak applies to noise='poisson'")
    if density is not None and (noise != "impulse" or isinstance(density, bool)
                                or not isinstance(density, (int, float, np.floating)) or not 0 < density < 1):
        raise InputError("density applies to noise='impulse' and is a fraction between 0 and 1")
    if peak is not None and not (np.isfinite(peak) and 1e-3 <= peak <= 1e9):
        raise InputError(f"peak must be a number of photons from 0.001 to 1e9 (got {peak})")
    if isinstance(image, torch.Tensor):
        t = image.detach().float().cpu()
        shape = t.shape
        if t.ndim == 4:
            outs = [denoise(t[i], sigma, model, tile, backend=backend, noise=noise, peak=peak, pd_stride=pd_stride,
                            strength=strength, noise_scale=noise_scale, density=density)
                    for i in range(t.shape[0])]
            return torch.stack(outs).to(image.dtype)
        arr = t.numpy() if t.ndim == 2 else np.moveaxis(t.numpy(), 0, -1)
        res = denoise(arr, sigma, model, tile, return_info, backend=backend, noise=noise, peak=peak,
                      pd_stride=pd_stride, strength=strength, noise_scale=noise_scale, density=density)
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
    estimate, routed = None, []
    if noise == "auto":
        noise = "gaussian"
        if model is None and color and sigma is None and CAMERA_MODEL in shipped_models():
            estimate = estimate_noise_level(x)
            if estimate.correlated >= 0.5:
                model = CAMERA_MODEL
                routed = ["the noise is spatially correlated, as a camera's: used the camera model"]
    if isinstance(model, nn.Module):
        net, name = model.eval(), type(model).__name__
    else:
        name = resolve_model_name(model, color)
        net, meta = get_model(name)
    backend = resolve_backend(net, backend)
    # a converted copy (uint8/uint16 input) is ours to overwrite; the caller's float array only on request
    extra: dict[str, Any] = {"noise": noise, "noise_scale": float(noise_scale)}
    keep = 0.0  # a blind model told a level below its estimate keeps part of the noise: needs the noisy image
    if not takes_map(net) and noise == "gaussian" and (sigma is not None or noise_scale != 1):
        keep = blind_keep(x, (sigma if sigma is not None else estimate_sigma(x)) * noise_scale, extra)
    inplace = (overwrite_input or x is not a) and strength == 1 and keep == 0

    def gaussian(img: np.ndarray, level: float | NoiseLevel) -> np.ndarray:
        forward = None if backend == "eager" else get_forward(net, backend)
        return apply_model(net, img, level, working_tile(net, tile), progress, forward, inplace=inplace)

    def real(img: np.ndarray, level: float | NoiseLevel) -> np.ndarray:
        from deepdenoise.realnoise import pd_denoise

        forward = None if backend == "eager" else get_forward(net, backend)
        tile_ = working_tile(net, tile)
        return pd_denoise(lambda im, tick: apply_model(net, im, level, tile_, tick, forward, inplace=True),
                          img, pd_stride, progress=progress)

    if noise == "poisson":
        from deepdenoise.poisson import NoiseModel, denoise_stabilised, estimate_noise_model

        nm = estimate_noise_model(x) if peak is None else NoiseModel.from_peak(peak, sigma or 0.0)
        if peak is None and sigma is not None:
            nm = NoiseModel(nm.a, (sigma / 255.0) ** 2)  # the read noise as given
        inplace = True  # gaussian() is called on the transformed image, a new array
        den, used_sigma = denoise_stabilised(x, nm, gaussian)
        extra.update(peak=nm.peak, read_sigma=nm.sigma, sigma_estimated=peak is None)  # sigma: stabilised level
    elif noise == "impulse":
        from deepdenoise.impulse import restore_impulses

        inplace = True  # gaussian() only ever sees arrays restore_impulses made
        res = restore_impulses(x, lambda img, s: gaussian(img, s * noise_scale), density, sigma=sigma)
        den, used_sigma = res.image, res.sigma
        extra.update(impulse_density=res.density, density_estimated=density is None)
    elif noise == "real":  # the level of the sub-images, where the noise is nearly white
        if training_noise(meta) == "camera":
            pd_stride = 1  # the model learned camera noise itself: pixel-shuffling would only hurt
        level = noise_level_for(net, x, sigma, noise_scale * estimate_gain(meta, sigma), pd_stride)
        den = real(x, level)
        extra.update(pd_stride=pd_stride, **level_info(level))
        used_sigma = typical_level(level)
    else:
        level = noise_level_for(net, x, sigma, noise_scale * estimate_gain(meta, sigma), estimate=estimate)
        den = gaussian(x, level)
        extra.update(level_info(level))
        used_sigma = typical_level(level)
    if keep > 0:
        den = put_back(x, den, keep)
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
    notes = routed + range_notes(
        meta, float(used_sigma), "stabilised noise level" if noise == "poisson" else "noise level")
    info = {"model": name, "sigma": float(used_sigma), "sigma_estimated": sigma is None, "backend": backend,
            "notes": notes, **extra}
    return (result, info) if return_info else result
