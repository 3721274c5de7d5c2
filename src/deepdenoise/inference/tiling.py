"""Running a denoiser on whole images of any size with bounded memory.

Tiles are cut with a context margin at least the network's receptive radius and only their
interiors are kept, so for a receptive-field-bounded network (DnCNN) the tiled result equals
whole-image inference up to float rounding, and memory is bounded by the tile size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deepdenoise.inference.levels import sigma_input
from deepdenoise.models import Denoiser
from deepdenoise.noise.level import MAP_BLUR, NoiseLevel

DEFAULT_TILE = 512
Forward = Callable[[torch.Tensor, Any], torch.Tensor]  # f(x [1, C, H, W], level) -> [1, C, H, W]


def run_model(model: Denoiser, x: torch.Tensor, sigma: float | NoiseLevel | None = None) -> torch.Tensor:
    """One forward pass in fp32 eager, no grad. x: [B, C, H, W] -> [B, C, H, W]."""
    with torch.inference_mode():
        return model(x, sigma_input(model, x, sigma))


def margin_for(model: Denoiser) -> int:
    """Context around each tile: the receptive radius, plus the reach of a per-pixel noise map."""
    r = model.receptive_radius + (MAP_BLUR if model.noise_input else 0)
    mult = model.multiple
    return int(np.ceil(r / mult) * mult)


def working_tile(model: Denoiser, tile: int | None) -> int | None:
    """The tile size actually used for ``tile``: at least 4x the model's context margin, so the
    margins cost at most 2.25x the tile's pixels. (The fast U-Nets see 224 px of context: with
    512-px tiles a large image cost 3.5x its pixels; 896-px tiles run a 4 MP photo 1.46x faster
    for 3% more memory.) The result does not depend on the tile size."""
    if tile is None:
        return None
    unit = model.multiple
    return max(int(tile), -(-4 * margin_for(model) // unit) * unit)


def denoise_tensor(
    model: Denoiser, x: torch.Tensor, sigma: float | NoiseLevel | None = None, tile: int | None = DEFAULT_TILE,
    progress: Callable[[int, int], None] | None = None,
    forward: Forward | None = None, out: torch.Tensor | None = None,
    margin: int | None = None,
) -> torch.Tensor:
    """Denoise x: [1, C, H, W] in [0, 1]; tiled when larger than ``tile`` (None: never tile).

    ``x`` and ``out`` may be strided views (e.g. of an [H, W, C] NumPy array): only one band of
    tiles at a time is made contiguous, which is what bounds the memory on large images. ``out``
    may be ``x`` itself: the image is then denoised in place, band by band, keeping a copy of
    only the noisy rows the next band still needs as context (no second full-size buffer).
    ``margin`` overrides the context for a ``forward`` that sees further than the model (PD).
    ``forward(tile, sigma)`` is a prepared forward (:func:`deepdenoise.inference.backends.make_forward`); a
    noise-level function becomes each tile's own map inside it.
    """
    run: Forward = forward or (lambda t, s: run_model(model, t.contiguous(), s))

    def fwd(t: torch.Tensor) -> torch.Tensor:
        return run(t, sigma)

    _, c, h, w = x.shape
    if out is None:
        out = torch.empty(x.shape[0], model.in_channels, h, w, dtype=torch.float32)  # [1, C, H, W]
    if tile is None or (h <= tile and w <= tile):
        out.copy_(fwd(x))
        return out
    m = margin_for(model) if margin is None else int(margin)
    ys, xs = list(range(0, h, tile)), list(range(0, w, tile))
    total, done = len(ys) * len(xs), 0
    above = x[:, :, :0]  # noisy rows [max(0, y0 - m), y0), kept because out may overwrite them
    for y0 in ys:
        y1, ya, yb = min(y0 + tile, h), max(0, y0 - m), min(h, y0 + tile + m)
        band = torch.cat([above, x[:, :, y0:yb]], dim=2)  # [1, C, yb - ya, W] noisy rows ya..yb
        def tick() -> None:
            nonlocal done
            done += 1
            if progress:
                progress(done, total)

        res_band = denoise_band(fwd, band, y0 - ya, y1 - ya, tile, m, tick)  # [1, C, y1 - y0, W]
        above = band[:, :, max(0, y1 - m) - ya:y1 - ya].clone()  # before out[y0:y1] is written
        out[:, :, y0:y1] = res_band
    return out


def denoise_band(fwd: Callable[[torch.Tensor], torch.Tensor], band: torch.Tensor, top: int, bottom: int,
                 tile: int, margin: int, tick: Callable[[], None] | None = None) -> torch.Tensor:
    """One band of tiles: ``band`` [1, C, rows, W] holds the band's rows ``top:bottom`` with their
    context above and below; returns the denoised rows [1, C, bottom - top, W]. Tiles start at
    multiples of ``tile`` across, each with ``margin`` columns of context: the whole-image result,
    whatever the band's neighbours (a streamed image gets exactly what a loaded one gets).
    ``tick()`` is called after each tile."""
    w = band.shape[3]
    res_band: torch.Tensor | None = None  # [1, C, rows, W]: C from the network (a mask is input only)
    for x0 in range(0, w, tile):
        x1, xa, xb = min(x0 + tile, w), max(0, x0 - margin), min(w, x0 + tile + margin)
        res = fwd(band[:, :, :, xa:xb])  # [1, C, <= tile + 2m, <= tile + 2m]
        if res_band is None:
            res_band = torch.empty(1, res.shape[1], bottom - top, w)
        res_band[:, :, :, x0:x1] = res[:, :, top:bottom, x0 - xa:x1 - xa]
        if tick:
            tick()  # after every tile: progress bars move, and a cancelled job stops here
    assert res_band is not None
    return res_band


def tensor_view(image: np.ndarray) -> torch.Tensor:
    """[H, W] or [H, W, C] float32 array -> a [1, C, H, W] tensor view of the same memory."""
    t = torch.from_numpy(image)
    return t[None, None] if image.ndim == 2 else t.permute(2, 0, 1)[None]


def apply_model(model: Denoiser, image: np.ndarray, sigma: float | NoiseLevel | None = None,
                tile: int | None = DEFAULT_TILE,
                progress: Callable[[int, int], None] | None = None,
                forward: Forward | None = None,
                inplace: bool = False, margin: int | None = None) -> np.ndarray:
    """Denoise a float [H, W] or [H, W, 3] array with ``model``; a noise-map model given no level
    gets the image's estimated noise-level function.

    A gray model on a colour image runs per channel (each channel as a gray image). With
    ``inplace`` a writable float32 ``image`` receives the result (one full-size buffer less).
    """
    if sigma is None and model.noise_input:  # blind use of a noise-map model: the estimated level
        from deepdenoise.noise.level import estimate_noise_level

        sigma = estimate_noise_level(image)
    if model.takes_mask:
        return _apply_masked(model, image, sigma, tile, progress, forward, margin)
    channels = model.in_channels
    color = image.ndim == 3
    if color and channels == 1:
        planes = [apply_model(model, image[:, :, k], sigma.channel(k) if isinstance(sigma, NoiseLevel) else sigma,
                              tile, progress, forward, margin=margin)
                  for k in range(image.shape[2])]
        return np.stack(planes, axis=-1)
    if not color and channels == 3:
        rgb = np.repeat(image[:, :, None], 3, axis=2)
        return apply_model(model, rgb, sigma, tile, progress, forward, margin=margin).mean(axis=2)
    src = np.asarray(image, dtype=np.float32)
    if not src.flags.writeable or not (src.flags.c_contiguous or src.flags.f_contiguous):
        src = np.ascontiguousarray(src)
    result = src if inplace and src.flags.writeable else np.empty(src.shape, dtype=np.float32)
    denoise_tensor(model, tensor_view(src), sigma, tile, progress, forward, out=tensor_view(result), margin=margin)
    return result


def _apply_masked(model: Denoiser, image: np.ndarray, sigma: float | NoiseLevel | None, tile: int | None,
                  progress: Callable[[int, int], None] | None, forward: Forward | None,
                  margin: int | None) -> np.ndarray:
    """A mask model's input: the image's channels then the mask's, [H, W, 2C] ([H, W, 2] gray);
    returns the image [H, W, C] ([H, W] gray)."""
    if image.ndim != 3 or image.shape[2] != model.input_channels:
        raise ValueError(f"this model takes {model.input_channels} channels (image and mask), got {image.shape}")
    src = np.ascontiguousarray(image, dtype=np.float32)
    shape = src.shape[:2] + ((model.in_channels,) if model.in_channels > 1 else ())
    result = np.empty(shape, dtype=np.float32)
    view = torch.from_numpy(result)
    out = view[None, None] if result.ndim == 2 else view.permute(2, 0, 1)[None]  # [1, C, H, W]
    denoise_tensor(model, tensor_view(src), sigma, tile, progress, forward, out=out, margin=margin)
    return result
