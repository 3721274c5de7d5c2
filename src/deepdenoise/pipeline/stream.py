"""Gigapixel TIFFs in bounded memory: read, denoise and write one band of rows at a time.

With the pixel limit lifted (``--max-pixels 0``), a single-image TIFF (gray or RGB, 8 or 16 bits)
larger than ``STREAM_ABOVE`` pixels is never held whole: its strips or tiles are decoded in order,
one band of rows (the inference tile's height, plus the model's context above and below) is
denoised at a time with the same tiling as a loaded image (so the result is the same), and the
output is written as a tiled, deflate-compressed TIFF while the next band is read. Memory is a few
bands: about ``(tile + 2 * margin) * width * channels * 16`` bytes, never the image.

The noise level is measured once, on the first band, and used for every band (a noise-map model
would otherwise see a different estimate per band).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from deepdenoise.errors import InputError
from deepdenoise.io import ImageHeader, atomic_output, read_header

log = logging.getLogger(__name__)
STREAM_ABOVE = 50_000_000  # pixels: larger single-image TIFFs stream when the limit is lifted
OUT_TILE = 256  # tile side of the written TIFF


def can_stream(path: Path, header: ImageHeader) -> bool:
    """Whether ``path`` is a TIFF this module streams: one image, gray or RGB, 8 or 16 bits."""
    return (header.format == "TIFF" and header.frames == 1 and header.channels in (1, 3)
            and header.bits in (8, 16) and path.suffix.lower() in (".tif", ".tiff"))


def row_bands(path: Path, rows: int) -> Iterator[np.ndarray]:
    """The image's rows in bands of ``rows`` (the last one shorter), float32 in [0, 1], decoded
    strip by strip or tile by tile: [rows, W] or [rows, W, 3]."""
    import tifffile

    with tifffile.TiffFile(str(path)) as tf:
        page: Any = tf.pages[0]
        h, w = int(page.imagelength), int(page.imagewidth)
        samples = int(page.samplesperpixel)
        if page.planarconfig != 1 and samples > 1:
            raise InputError(f"{path}: planar (band-interleaved) TIFFs are not streamed; convert to contiguous")
        scale = 255.0 if page.dtype == np.uint8 else 65535.0
        buf = np.zeros((0, w, samples), np.float32)
        row_of_buf = 0  # image row of buf[0]
        pending: dict[int, np.ndarray] = {}  # segment rows, by their top row
        for data, index, _ in page.segments(sort=True):
            y, x = int(index[2]), int(index[3])
            seg = np.asarray(data)[0]  # [rows, cols, samples]
            seg = seg[:max(0, min(seg.shape[0], h - y)), :max(0, min(seg.shape[1], w - x))]
            block = pending.setdefault(y, np.zeros((seg.shape[0], w, samples), np.float32))
            block[:, x:x + seg.shape[1]] = seg.astype(np.float32) / scale
            if x + seg.shape[1] >= w:  # this row of segments is complete
                buf = np.concatenate([buf, pending.pop(y)])
                while buf.shape[0] >= rows:
                    yield _plane(buf[:rows])
                    buf, row_of_buf = buf[rows:], row_of_buf + rows
        if buf.shape[0]:
            yield _plane(buf)


def _plane(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a[:, :, 0] if a.shape[2] == 1 else a)


def stream_denoise_tiff(src: Path, dst: Path, opts: Any, overwrite: bool = False) -> dict[str, Any]:
    """Denoise ``src`` into ``dst`` band by band (see the module docstring); returns a report."""
    import tifffile

    from deepdenoise.inference.api import get_model, resolve_model_name
    from deepdenoise.inference.modes import estimate_gain, noise_level_for
    from deepdenoise.inference.predictor import Predictor
    from deepdenoise.inference.tiling import margin_for, run_model

    header = read_header(src)
    color = header.channels == 3
    name = resolve_model_name(opts.model, color)
    net, meta = get_model(name)
    if net.in_channels != header.channels:
        raise InputError(f"{src}: streaming needs a model for {'colour' if color else 'gray'} images "
                         f"({name} is not one)")
    predictor = Predictor(net, opts.backend, opts.tile or 512)
    forward, backend = predictor.forward, predictor.backend
    tile = predictor.tile or 512
    m = margin_for(net)
    bands = row_bands(src, tile)
    first = next(bands)
    level = noise_level_for(net, first, opts.sigma, opts.noise_scale * estimate_gain(meta, opts.sigma))
    run = forward or (lambda t, s: run_model(net, t.contiguous(), s))
    t0 = time.perf_counter()

    def tiles() -> Iterator[np.ndarray]:
        from deepdenoise.io.images import _quantize

        pending = np.zeros((0, header.width, 3) if color else (0, header.width), np.float32)
        for band in _denoised_bands(bands, first, lambda t: run(t, level), tile, m, color):
            pending = np.concatenate([pending, band])
            while pending.shape[0] >= OUT_TILE:
                yield from _row_tiles(_quantize(pending[:OUT_TILE], header.bits), header.width)
                pending = pending[OUT_TILE:]
        if pending.shape[0]:
            yield from _row_tiles(_quantize(pending, header.bits), header.width)

    shape = (header.height, header.width, 3) if color else (header.height, header.width)
    dtype = np.uint8 if header.bits == 8 else np.uint16

    def encode(tmp: Path) -> None:
        tifffile.imwrite(str(tmp), tiles(), shape=shape, dtype=dtype, tile=(OUT_TILE, OUT_TILE),
                         photometric="rgb" if color else "minisblack", compression="zlib")

    atomic_output(dst, encode, overwrite)
    return {"model": name, "sigma": float(level.typical() if hasattr(level, "typical") else level),
            "sigma_estimated": opts.sigma is None, "backend": backend, "seconds": time.perf_counter() - t0,
            "megapixels": header.pixels / 1e6, "notes": [f"streamed in bands of {tile} rows (bounded memory)"]}


def _denoised_bands(bands: Iterator[np.ndarray], first: np.ndarray, fwd: Callable[[Any], Any], tile: int,
                    m: int, color: bool) -> Iterator[np.ndarray]:
    """Each band of rows denoised with ``m`` rows of context from its neighbours above and below:
    [rows, W(, 3)], exactly what the whole image would give those rows."""
    import torch

    from deepdenoise.inference.tiling import denoise_band, tensor_view

    above = first[:0]
    current: np.ndarray | None = first
    following = next(bands, None)
    while current is not None:
        below = following[:m] if following is not None else current[:0]
        window = np.concatenate([above, current, below])  # rows with context: [ctx + rows + ctx, W(, 3)]
        top = above.shape[0]
        with torch.inference_mode():
            res = denoise_band(fwd, tensor_view(window), top, top + current.shape[0], tile, m)
        yield res[0].permute(1, 2, 0).numpy()[:, :, 0 if not color else slice(None)]  # [rows, W(, 3)]
        joined = np.concatenate([above, current])
        above = joined[max(0, joined.shape[0] - m):]
        current, following = following, next(bands, None) if following is not None else None


def _row_tiles(rows: np.ndarray, width: int) -> Iterator[np.ndarray]:
    """A row of OUT_TILE x OUT_TILE tiles (zero-padded at the right and bottom edges)."""
    for x in range(0, width, OUT_TILE):
        t = rows[:, x:x + OUT_TILE]
        if t.shape[0] < OUT_TILE or t.shape[1] < OUT_TILE:
            pad = [(0, OUT_TILE - t.shape[0]), (0, OUT_TILE - t.shape[1])] + [(0, 0)] * (t.ndim - 2)
            t = np.pad(t, pad)
        yield t
