"""FITS reading and writing (astropy), with limits checked on the headers before any data is read.

Every image HDU is kept (or the one ``hdu`` names); tables and other HDUs are carried over
unchanged. Integer data with BSCALE/BZERO is read scaled, as physical values; results are written
as float32 with the scaling keywords removed, each processed HDU's header kept and a HISTORY card
added. Cubes (NAXIS3 and beyond) are frames; NaN pixels are masked, never invented.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepdenoise.errors import InputError, OutputError

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")


def is_fits(path: str | Path) -> bool:
    name = str(path).lower()
    return name.endswith(FITS_SUFFIXES)


@dataclass
class FitsImage:
    """One image HDU to process: its data as float frames [N, H, W] and where it came from."""

    index: int
    name: str
    frames: np.ndarray  # float32 or float64 [N, H, W]; NaN where the data is masked
    shape: tuple[int, ...]  # the HDU's own data shape (restored on writing)
    header: Any  # astropy Header (copied)
    gain: float | None = None  # electrons per ADU (GAIN), when the header says
    read_noise: float | None = None  # electrons (RDNOISE / READNOIS), when the header says


@dataclass
class FitsFile:
    """A FITS file's HDUs: the images to process and everything else, in order."""

    hdus: list[Any]  # astropy HDUs, copied (the processed ones are replaced on writing)
    images: list[FitsImage] = field(default_factory=list)


def _declared(header: Any) -> tuple[int, ...]:
    naxis = int(header.get("NAXIS", 0) or 0)
    if not 0 <= naxis <= 999:
        raise InputError(f"NAXIS = {naxis} is not valid")
    dims = tuple(int(header.get(f"NAXIS{k}", 0) or 0) for k in range(naxis, 0, -1))  # numpy order
    if any(d < 0 for d in dims):
        raise InputError(f"negative axis length in {dims}")
    return dims


def _pick(hdul: Any, hdu: str | None, name: str) -> list[int]:
    """Indices of the image HDUs to process: all with data, or the one ``hdu`` names."""
    images = [i for i, h in enumerate(hdul) if getattr(h, "is_image", False) and _declared(h.header)
              and int(np.prod(_declared(h.header), dtype=np.int64)) > 0]
    if hdu is None:
        if not images:
            raise InputError(f"{name}: no image HDU with data (tables only?)")
        return images
    try:
        index = int(hdu)
    except ValueError:
        found = [i for i, h in enumerate(hdul) if h.name.upper() == hdu.upper()]
        if not found:
            raise InputError(f"{name}: no HDU named {hdu!r}") from None
        index = found[0]
    if not 0 <= index < len(hdul):
        raise InputError(f"{name}: HDU {index} does not exist ({len(hdul)} HDUs)")
    if index not in images:
        raise InputError(f"{name}: HDU {index} ({hdul[index].name or type(hdul[index]).__name__}) is not an "
                         "image with data")
    return [index]


def read_fits(path: str | Path, hdu: str | None = None, max_pixels: int | None = None) -> FitsFile:
    """Read a FITS file: headers first (sizes checked against ``max_pixels``), then the data."""
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        raise InputError(f"{p}: no such file" if not p.exists() else f"{p}: not a readable FITS file")
    try:
        with warnings.catch_warnings():  # astropy's complaints become our one-line errors, or nothing
            warnings.simplefilter("ignore")
            return _read(p, hdu, max_pixels)
    except InputError as exc:
        raise InputError(str(exc) if str(exc).startswith(str(p)) else f"{p}: {exc}") from None
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise InputError(f"{p}: not a readable FITS file ({str(exc).splitlines()[0][:200]})") from None


def _read(p: Path, hdu: str | None, max_pixels: int | None) -> FitsFile:
    from astropy.io import fits

    with fits.open(p, memmap=False, lazy_load_hdus=False, do_not_scale_image_data=True) as hdul:
        picked = _pick(hdul, hdu, str(p))
        total = sum(int(np.prod(_declared(hdul[i].header), dtype=np.int64)) for i in picked)
        if max_pixels and total > max_pixels:
            raise InputError(f"{p}: image data has {total} pixels; the limit is {max_pixels} (--max-pixels)")
        images = [_image(hdul[i], i) for i in picked]
        hdus = [h.copy() for h in hdul]
    return FitsFile(hdus, images)


def _image(h: Any, index: int) -> FitsImage:
    """The HDU's data in physical units (stored * BSCALE + BZERO; BLANK integers masked)."""
    data = np.asarray(h.data)
    if data.dtype.kind not in "iuf":
        raise InputError(f"HDU {index}: unsupported data type {data.dtype}")
    shape = tuple(data.shape)
    if data.ndim < 2:
        raise InputError(f"HDU {index}: {data.ndim}-dimensional data is not an image")
    raw = data.reshape(-1, *shape[-2:])  # [N, H, W]
    frames: np.ndarray = raw.astype(np.float64 if data.dtype.itemsize >= 4 else np.float32)  # [N, H, W]
    blank = h.header.get("BLANK")
    if data.dtype.kind in "iu" and isinstance(blank, int):
        frames[raw == blank] = np.nan
    bscale, bzero = float(h.header.get("BSCALE", 1.0)), float(h.header.get("BZERO", 0.0))
    if (bscale, bzero) != (1.0, 0.0):
        frames *= bscale
        frames += bzero
    if not np.isfinite(frames).any():
        raise InputError(f"HDU {index}: every pixel is NaN or infinite")
    frames[~np.isfinite(frames)] = np.nan  # +-inf are masked like NaN
    header = h.header.copy()
    return FitsImage(index, h.name, frames, shape, header, _number(header, ("GAIN", "EGAIN", "CCDGAIN")),
                     _number(header, ("RDNOISE", "READNOIS", "RON", "READNOISE")))


def _number(header: Any, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = header.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) and value > 0:
            return float(value)
    return None


def write_fits(path: str | Path, f: FitsFile, history: str, overwrite: bool = False) -> None:
    """Write ``f`` with its processed images (float32, a HISTORY card each) in place of the originals."""
    from astropy.io import fits

    from deepdenoise.io import atomic_output

    out = list(f.hdus)
    for img in f.images:
        header = img.header.copy()
        for key in ("BSCALE", "BZERO", "BLANK", "CHECKSUM", "DATASUM"):
            header.remove(key, ignore_missing=True, remove_all=True)
        data = img.frames.reshape(img.shape).astype(np.float32)
        for line in _wrap(history):
            header.add_history(line)
        cls = fits.PrimaryHDU if img.index == 0 else fits.ImageHDU
        if img.index > 0 and isinstance(out[img.index], fits.CompImageHDU):
            out[img.index] = fits.CompImageHDU(data, header=header, name=img.name or None)
            continue
        hdu = cls(data, header=header)
        if img.index > 0 and img.name:
            hdu.name = img.name
        out[img.index] = hdu
    if not isinstance(out[0], fits.PrimaryHDU):
        raise OutputError(f"{path}: the first HDU is not a primary HDU")

    def encode(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            if str(path).lower().endswith(".gz"):
                import gzip

                with gzip.GzipFile(fileobj=fh, mode="wb", mtime=0) as gz:
                    fits.HDUList(out).writeto(gz)
            else:
                fits.HDUList(out).writeto(fh)

    atomic_output(Path(path), encode, overwrite)


def _wrap(text: str, width: int = 70) -> list[str]:
    """HISTORY cards hold 72 characters: split a long note into several."""
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return lines + ([line] if line else [])
