"""Pixel-shuffle down-sampling (PD) for camera noise, which demosaicing and JPEG have made
spatially correlated: the image's polyphase sub-images (every ``stride``-th pixel) carry nearly
white noise that a white-noise denoiser removes, and a refinement pass at full resolution puts
the detail back (Zhou et al. 2020, "When AWGN-based denoiser meets real noises")."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Progress = Callable[[int, int], None]
Denoise = Callable[[np.ndarray, "Progress | None"], np.ndarray]  # run(img [H, W(, C)] float32, progress) -> same shape


def pd_denoise(
    run: Denoise, x: np.ndarray, stride: int = 2, refine: bool = True,
    progress: Progress | None = None,
) -> np.ndarray:
    """Denoise a float image x ([H, W] or [H, W, C]) whose noise is spatially correlated, with
    ``run(img, progress)``, a white-noise denoiser on such arrays (the tiled model, so memory stays
    bounded by its tiles plus four image-size buffers; ``run`` may overwrite ``img``). x is not
    modified; ``progress(done, total)`` follows all 2 x stride^2 passes. Any size: the image is edge-padded to a
    multiple of ``stride`` and cropped back.
    """
    s = int(stride)
    if s <= 1:
        return run(np.array(x, dtype=np.float32), progress)
    h, w = x.shape[:2]
    ph, pw = (-h) % s, (-w) % s
    pad = ((0, ph), (0, pw)) + ((0, 0),) * (x.ndim - 2)
    xp = np.pad(x, pad, mode="edge") if ph or pw else x  # [H', W'(, C)]
    calls = s * s * (2 if refine else 1)
    done = 0

    def tick(k: int, n: int) -> None:
        if progress:
            progress(done * n + k, calls * n)

    flat = np.empty(xp.shape, np.float32)  # the sub-images' results, put back together
    for i in range(s):
        for j in range(s):
            flat[i::s, j::s] = run(np.ascontiguousarray(xp[i::s, j::s], dtype=np.float32), tick)
            done += 1
    if not refine:
        return flat[:h, :w]
    acc = np.zeros(xp.shape, np.float32)
    z = np.empty(xp.shape, np.float32)
    for i in range(s):
        for j in range(s):
            np.copyto(z, flat)
            z[i::s, j::s] = xp[i::s, j::s]  # this phase's noisy pixels back in
            acc += run(z, tick)
            done += 1
    acc /= s * s
    return acc[:h, :w]

