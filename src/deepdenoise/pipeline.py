"""File-level denoising: read, denoise, write atomically; the CLI's ``denoise`` calls this."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from deepdenoise.api import denoise
from deepdenoise.errors import InputError, OutputError
from deepdenoise.io import ImageData, read_image, write_image


def denoise_file(src: Path, dst: Path, sigma: float | None, model: str | None, overwrite: bool,
                 tile: int | None, gray: bool) -> dict[str, object]:
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst}: already exists (use --overwrite to replace it)")
    if src.resolve() == dst.resolve():
        raise OutputError(f"{dst}: output would replace the input")
    img = read_image(src)
    pixels = img.pixels
    if gray and pixels.ndim == 3:
        pixels = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    out, info = denoise(pixels, sigma=sigma, model=model, tile=tile, return_info=True)
    write_image(dst, ImageData(out, img.bit_depth, img.alpha, img.icc, img.format), overwrite=overwrite)
    return info


def denoise_path(src: str, dst: str, sigma: float | None = None, model: str | None = None,
                 overwrite: bool = False, tile: int | None = 512, gray: bool = False) -> int:
    s, d = Path(src), Path(dst)
    if not s.exists():
        raise InputError(f"{s}: no such file")
    info = denoise_file(s, d, sigma, model, overwrite, tile, gray)
    how = "estimated" if info["sigma_estimated"] else "given"
    print(f"{s} -> {d}  model={info['model']} sigma={info['sigma']:.1f} ({how})", file=sys.stderr)
    return 0
