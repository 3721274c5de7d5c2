"""Reading and writing images without losing data.

Images come in as float32 arrays in [0, 1] ([H, W] gray or [H, W, 3] colour) plus what is needed
to write the result back the way it came: bit depth, alpha, ICC profile. Writes are atomic (a
temporary file in the target folder, then a rename) and never clobber an existing file unless asked.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepdenoise.defaults import MAX_PIXELS  # noqa: F401  (re-exported)
from deepdenoise.errors import InputError, OutputError
from deepdenoise.fsutil import publish_mode

DEFLATE_MAX_RATIO = 1100  # zlib cannot shrink data more than ~1032:1: a smaller file is truncated
READ_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".pgm", ".ppm"}


@dataclass
class ImageData:
    pixels: np.ndarray  # float32 [H, W] or [H, W, 3] in [0, 1]; a stack: [N, H, W] or [N, H, W, 3]
    bit_depth: int = 8  # 8, 16, or 32 (float)
    alpha: np.ndarray | None = None  # float32 [H, W] in [0, 1]
    icc: bytes | None = None
    format: str = "PNG"
    exif: bytes | None = None  # camera metadata, orientation reset (the pixels are already upright)
    camera: str | None = None  # EXIF make and model, when a camera took the picture
    notes: list[str] = field(default_factory=list)
    stack_shape: tuple[int, ...] | None = None  # a TIFF stack's leading axes (e.g. Z, T), flattened to N
    stack_axes: str = ""  # their names ('TZ'), kept for ImageJ/Fiji

    @property
    def is_color(self) -> bool:
        return self.pixels.ndim == (4 if self.stack_shape else 3)


@dataclass(frozen=True)
class Source:
    """An image's encoded bytes: a file on disk, or bytes already in memory (an upload), under the
    name errors show (never a server's temporary path)."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    @classmethod
    def of_bytes(cls, data: bytes, name: str = "upload") -> Source:
        if not data:
            raise InputError(f"{name}: file is empty")
        return cls(name, data=data)

    def opened(self) -> Any:
        """What the decoders open: the path, or a stream over the bytes."""
        return str(self.path) if self.path is not None else io.BytesIO(self.data or b"")

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes: a bounded read, whatever the size."""
        if self.data is not None:
            return self.data[:n]
        assert self.path is not None
        with open(self.path, "rb") as f:
            return f.read(n)

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size  # type: ignore[union-attr]

    @property
    def is_tiff(self) -> bool:
        suffix = self.path.suffix.lower() if self.path is not None else ""
        return suffix in (".tif", ".tiff") or self.head(4) in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header declares, read without decoding any pixel data."""

    width: int
    height: int
    frames: int = 1  # pages of a TIFF stack (every axis before Y, X and samples)
    channels: int = 1  # samples per pixel, alpha included
    format: str = "PNG"
    bits: int = 8  # bits per sample

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames


def read_header(path: str | Path) -> ImageHeader:
    """The declared size of an image file, from its header only: checked against the pixel limit
    before any decoding, so that a small file declaring a huge image costs nothing."""
    p = _existing_file(path)
    return _header(Source(str(p), path=p))


def decode_header(data: bytes, name: str = "upload") -> ImageHeader:
    """:func:`read_header` for an image's bytes in memory."""
    return _header(Source.of_bytes(data, name))


def _header(src: Source) -> ImageHeader:
    try:
        return _tiff_header(src) if src.is_tiff else _pil_header(src)
    except InputError:
        raise
    except Exception as exc:  # the decoders raise many types for broken headers
        raise InputError(f"{src.name}: not a readable image ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    """A decoder's complaint without class names or file paths (those go to the log only)."""
    text = str(exc).splitlines()[0] if str(exc) else "unreadable data"
    return text.split(": ", 1)[1] if text.startswith(("/", "'/")) and ": " in text else text


def _existing_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not an image file")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty")
    return p


def _tiff_header(src: Source) -> ImageHeader:
    import tifffile

    with tifffile.TiffFile(src.opened()) as tf:
        if not tf.series:
            raise InputError(f"{src.name}: TIFF holds no image")
        series = tf.series[0]
        shape, axes = tuple(int(n) for n in series.shape), series.axes
        bits = int(np.dtype(series.dtype).itemsize * 8)
    if not shape or min(shape) == 0:
        raise InputError(f"{src.name}: image has zero size")
    samples = shape[axes.index("S")] if "S" in axes else 1
    rest = [n for a, n in zip(axes, shape) if a != "S"]
    if len(rest) < 2:
        raise InputError(f"{src.name}: unsupported image shape {shape}")
    frames = int(np.prod(rest[:-2], dtype=np.int64))
    return ImageHeader(rest[-1], rest[-2], frames, samples, "TIFF", bits)


def _pil_header(src: Source) -> ImageHeader:
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the limit is ours, checked next
        try:
            with Image.open(src.opened()) as im:
                w, h, mode, fmt = im.size[0], im.size[1], im.mode, im.format or "PNG"
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    bands = {"1": 1, "L": 1, "P": 3, "I": 1, "F": 1, "LA": 2, "PA": 4, "RGB": 3, "RGBA": 4, "CMYK": 4,
             "YCbCr": 3, "I;16": 1, "I;16B": 1, "I;16L": 1}.get(mode, 3)
    bits = {"1": 1, "I": 32, "F": 32}.get(mode, 16 if mode.startswith("I;16") else 8)
    if fmt == "PNG" and _png_is_16bit_color(src):
        bits = 16
    header = ImageHeader(w, h, 1, bands, fmt, bits)
    if fmt == "PNG":
        _check_deflate_size(src, header)
    return header


def _check_deflate_size(src: Source, header: ImageHeader) -> None:
    """A PNG's pixels are deflate-compressed, which cannot shrink them beyond ~1032:1: a file
    smaller than that declares more than it holds (truncated or forged)."""
    raw = header.height * (1 + (header.width * header.channels * header.bits + 7) // 8)
    size = src.size
    if raw > size * DEFLATE_MAX_RATIO:
        raise InputError(f"{src.name}: file is truncated or corrupt ({size} bytes cannot hold the "
                         f"{header.width}x{header.height} image it declares)")


def check_pixel_limit(header: ImageHeader, max_pixels: int | None, name: str) -> None:
    """Refuse an image whose declared size (all frames together) is beyond ``max_pixels``."""
    if max_pixels is not None and max_pixels > 0 and header.pixels > max_pixels:
        frames = f" in {header.frames} frames" if header.frames > 1 else ""
        raise InputError(f"{name}: image has {header.pixels} pixels{frames} "
                         f"({header.width}x{header.height}); the limit is {max_pixels} (--max-pixels)")


def _read_tiff(src: Source) -> ImageData:
    """One image, or a stack (z-stack, time series, hyperstack: every axis before Y, X and colour
    samples is a frame axis, flattened to one and restored on writing)."""
    import tifffile

    name = src.name
    with tifffile.TiffFile(src.opened()) as tf:
        series = tf.series[0]
        axes, arr = series.axes, series.asarray()
    if arr.size == 0:
        raise InputError(f"{name}: image has zero size")
    if arr.ndim != len(axes):  # unusual metadata: fall back on the shape alone
        axes = "YXS"[:arr.ndim] if arr.ndim < 3 or arr.shape[-1] in (1, 3, 4) else "QYX"[-arr.ndim:]
    if "S" in axes and not axes.endswith("S"):  # planar [..., C, H, W] -> [..., H, W, C]
        arr = np.moveaxis(arr, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    if axes.endswith("S") and arr.shape[-1] == 1:
        arr, axes = arr[..., 0], axes[:-1]
    frame_dims = arr.ndim - (3 if axes.endswith("S") else 2)
    if frame_dims <= 0 or int(np.prod(arr.shape[:frame_dims])) == 1:
        return _from_array(arr.reshape(arr.shape[frame_dims:]), "TIFF", name)
    if axes.endswith("S") and arr.shape[-1] != 3:
        raise InputError(f"{name}: stacks with {arr.shape[-1]} samples per pixel are not supported (gray or RGB)")
    bits, data = _to_float(arr.reshape(-1, *arr.shape[frame_dims:]), name)  # [N, H, W(, 3)]
    named = ", ".join(f"{a}={n}" for a, n in zip(axes, arr.shape[:frame_dims]) if a not in "QI")
    return ImageData(data, bits, format="TIFF", stack_shape=tuple(arr.shape[:frame_dims]),
                     stack_axes=axes[:frame_dims],
                     notes=[f"stack of {data.shape[0]} frames" + (f" ({named})" if named else "")])


def _to_float(arr: np.ndarray, name: str) -> tuple[int, np.ndarray]:
    """(bit depth, float32 copy in [0, 1] for integer types; float data as it is)."""
    if arr.dtype == np.uint8:  # scale in place: no second full-size float temporary
        data = arr.astype(np.float32)
        data /= 255.0
        return 8, data
    if arr.dtype == np.uint16:
        data = arr.astype(np.float32)
        data /= 65535.0
        return 16, data
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name}: image contains NaN or infinite values")
        return 32, np.ascontiguousarray(arr, dtype=np.float32)
    raise InputError(f"{name}: unsupported pixel type {arr.dtype}")


def _from_array(arr: np.ndarray, fmt: str, name: str) -> ImageData:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise InputError(f"{name}: unsupported image shape {arr.shape}")
    bits, data = _to_float(arr, name)
    alpha = None
    if data.ndim == 3 and data.shape[2] in (2, 4):
        alpha, data = data[:, :, -1].copy(), data[:, :, :-1]
        if data.shape[2] == 1:
            data = data[:, :, 0]
    return ImageData(np.ascontiguousarray(data), bits, alpha, None, fmt)


def read_image(path: str | Path, max_pixels: int | None = MAX_PIXELS) -> ImageData:
    """Read an image file; raise :class:`InputError` with a one-line reason if it is not one.

    The header is read first and its declared size (every frame counted) checked against
    ``max_pixels`` (None or 0: no limit) before any pixel is decoded."""
    p = _existing_file(path)
    return _decode(Source(str(p), path=p), max_pixels)


def decode_image(data: bytes, name: str = "upload", max_pixels: int | None = MAX_PIXELS) -> ImageData:
    """:func:`read_image` for an image's bytes in memory (an upload): decoded once, no file."""
    return _decode(Source.of_bytes(data, name), max_pixels)


def _decode(src: Source, max_pixels: int | None) -> ImageData:
    from PIL import Image, ImageOps

    check_pixel_limit(_header(src), max_pixels, src.name)
    if src.is_tiff:
        try:
            return _read_tiff(src)
        except (InputError, MemoryError):
            raise
        except Exception as exc:  # tifffile raises many types for broken files
            raise InputError(f"{src.name}: cannot read TIFF ({_reason(exc)})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # checked above, on the header
            try:
                return _read_pil(src, Image, ImageOps)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except (InputError, MemoryError):
        raise
    except Exception as exc:
        raise InputError(f"{src.name}: not a readable image ({_reason(exc)})") from None


def _read_pil(src: Source, Image, ImageOps) -> ImageData:  # type: ignore[no-untyped-def]
    with Image.open(src.opened()) as im:
        fmt = im.format or "PNG"
        icc = im.info.get("icc_profile")
        im.load()
        if fmt == "PNG" and _png_is_16bit_color(src):
            data = _read_png16_color(src)  # Pillow would reduce it to 8 bits
            data.icc = icc
            data.exif = _raw_exif(im)  # as it came: these pixels are not turned upright
            return data
        upright = ImageOps.exif_transpose(im)
        data = _from_pil(upright, fmt, icc, src.name)
        data.exif, data.camera = _exif_info(upright)
        return data


def _exif_info(im) -> tuple[bytes | None, str | None]:  # type: ignore[no-untyped-def]
    """The image's EXIF (camera, exposure, date, GPS...) to carry over, with the orientation tag
    set to 1 (the pixels have been turned upright already), and the camera's make and model.
    (None, None) when there is none or it is unreadable."""
    try:
        exif = im.getexif()
        if not len(exif):
            return None, None
        for ifd in (0x8769, 0x8825):  # Exif and GPS sub-IFDs: loaded so that tobytes() writes them
            if ifd in exif:
                exif.get_ifd(ifd)
        if 0x0112 in exif:
            exif[0x0112] = 1
        camera = " ".join(str(exif[t]).strip("\x00 ") for t in (0x010F, 0x0110) if t in exif).strip() or None
        return bytes(exif.tobytes()), camera
    except Exception:  # a malformed EXIF block must not stop the denoising
        return None, None


def _read_png16_color(src: Source) -> ImageData:
    import cv2

    if src.data is not None:
        arr = cv2.imdecode(np.frombuffer(src.data, np.uint8), cv2.IMREAD_UNCHANGED)
    else:
        arr = cv2.imread(str(src.path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputError(f"{src.name}: not a readable 16-bit PNG")
    code = cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return _from_array(cv2.cvtColor(arr, code), "PNG", src.name)


def _raw_exif(im) -> bytes | None:  # type: ignore[no-untyped-def]
    """A PNG's EXIF block unchanged (orientation included), or None."""
    raw = im.info.get("exif")
    return bytes(raw) if isinstance(raw, (bytes, bytearray)) and raw else None


def _png_is_16bit_color(src: Source) -> bool:
    head = src.head(26)
    return len(head) == 26 and head[12:16] == b"IHDR" and head[24] == 16 and head[25] in (2, 6)


def _from_pil(im, fmt: str, icc: bytes | None, name: str) -> ImageData:  # type: ignore[no-untyped-def]
    notes: list[str] = []
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im)
        data = ImageData(np.clip(arr.astype(np.float32) / 65535.0, 0, 1), 16, None, icc, fmt)
        return data
    if mode == "F":
        return _from_array(np.asarray(im, dtype=np.float32), fmt, name)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        notes.append("palette image converted to RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode == "CMYK":
        im = im.convert("RGB")
        notes.append("CMYK converted to RGB")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        im = im.convert("RGB")
    data = _from_array(np.asarray(im), fmt, name)
    data.icc = icc
    data.notes = notes
    return data


def _atomic_target(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise OutputError(f"{path}: is a directory")
    if path.parent.exists() and not path.parent.is_dir():
        raise OutputError(f"{path.parent}: is not a folder")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (use --overwrite to replace it)")
    if not path.parent.exists():
        raise OutputError(f"{path.parent}: output folder does not exist")
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"{path.parent}: output folder is not writable")


def write_image(path: str | Path, image: ImageData, overwrite: bool = False) -> None:
    """Write ``image`` atomically; the format follows the suffix, the bit depth follows the input."""
    p = Path(path)
    atomic_output(p, lambda tmp: _encode(tmp, p.suffix.lower(), image), overwrite)


def encode_image(image: ImageData, suffix: str) -> bytes:
    """``image`` encoded as a file of type ``suffix`` ('.png', '.tif', '.jpg', '.webp', '.bmp'),
    in memory: what :func:`write_image` would write."""
    buf = io.BytesIO()
    try:
        _encode(buf, suffix.lower(), image)
    except OutputError:
        raise
    except Exception as exc:
        raise OutputError(f"cannot encode the result as {suffix} ({_reason(exc)})") from None
    return buf.getvalue()


def atomic_output(p: Path, encode: Callable[[Path], None], overwrite: bool = False) -> None:
    """Run ``encode(tmp)`` on a temporary file next to ``p``, then publish it as ``p``: renamed over
    it with ``overwrite``, else linked (never clobbering a file that appeared meanwhile). The
    temporary file is removed on every path, a signal included."""
    _atomic_target(p, overwrite)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=p.suffix.lower(), dir=p.parent)
    except OSError as exc:
        raise OutputError(f"{p.parent}: cannot write there ({exc.strerror})") from None
    os.close(fd)
    try:
        encode(Path(tmp))
        publish_mode(tmp, p)
        if overwrite:
            os.replace(tmp, p)
        else:
            os.link(tmp, p)  # fails if p appeared meanwhile: never clobber
    except FileExistsError:
        raise OutputError(f"{p}: already exists (use --overwrite to replace it)") from None
    except OutputError:
        raise
    except Exception as exc:
        raise OutputError(f"{p}: cannot write ({_reason(exc)})") from None
    finally:  # on every path, a signal included: no hidden temporary file left behind
        if os.path.exists(tmp):
            os.unlink(tmp)


def _quantize(a: np.ndarray, bits: int, rows: int = 256) -> np.ndarray:
    """Clip to [0, 1] and round to 8 or 16 bits, a band of rows at a time (bounded temporaries)."""
    peak, dtype = (65535.0, np.uint16) if bits == 16 else (255.0, np.uint8)
    out = np.empty(a.shape, dtype=dtype)
    for y in range(0, a.shape[0], rows):
        band = np.clip(a[y:y + rows], 0.0, 1.0) * peak
        out[y:y + rows] = np.round(band, out=band)
    return out


def _encode(tmp: Path | io.BytesIO, suffix: str, image: ImageData) -> None:
    from PIL import Image

    px = image.pixels
    if image.alpha is not None:
        px = np.concatenate([px if px.ndim == 3 else px[:, :, None], image.alpha[:, :, None]], axis=2)
    if image.stack_shape and suffix not in (".tif", ".tiff"):
        raise OutputError(f"a stack of {px.shape[0]} frames can only be written as TIFF (.tif)")
    if suffix in (".tif", ".tiff"):
        import tifffile

        out = px.astype(np.float32) if image.bit_depth == 32 else _quantize(px, image.bit_depth)
        if image.stack_shape:
            out = out.reshape(*image.stack_shape, *out.shape[1:])  # [Z, (T, ...) H, W(, 3)]
            axes = image.stack_axes
            if not image.is_color and axes and all(a in "TZC" for a in axes) and list(axes) == sorted(
                    axes, key="TZC".index):  # an ImageJ hyperstack stays one (Fiji reads its axes)
                tifffile.imwrite(_target(tmp), out, imagej=True, metadata={"axes": axes + "YX"})
            else:
                tifffile.imwrite(_target(tmp), out, photometric="rgb" if image.is_color else "minisblack")
            return
        photometric = "rgb" if out.ndim == 3 and out.shape[2] >= 3 else "minisblack"
        extra: dict[str, Any] = {"extrasamples": ["unassalpha"]} if image.alpha is not None else {}
        tifffile.imwrite(_target(tmp), out, photometric=photometric, iccprofile=image.icc, **extra)
        return
    if suffix not in (".png", ".jpg", ".jpeg", ".bmp", ".webp"):
        raise OutputError(f"unsupported output format '{suffix}' (use .png, .tif, .jpg, .webp or .bmp)")
    bits = 16 if (image.bit_depth >= 16 and suffix == ".png") else 8
    q = _quantize(px, bits)
    if bits == 16 and q.ndim == 3:
        _write_png16_color(tmp, q, image.icc, image.exif)  # Pillow writes only 8-bit colour PNGs
        return
    im = Image.fromarray(q)  # uint8 -> L/RGB(A), uint16 gray -> I;16
    if suffix in (".jpg", ".jpeg") and im.mode in ("RGBA", "LA"):
        im = im.convert(im.mode[:-1])
    kwargs: dict[str, object] = {}
    if image.icc and suffix in (".png", ".jpg", ".jpeg", ".webp"):
        kwargs["icc_profile"] = image.icc
    if image.exif and suffix in (".png", ".jpg", ".jpeg", ".webp"):
        kwargs["exif"] = image.exif
    if suffix in (".jpg", ".jpeg", ".webp"):
        kwargs["quality"] = 95
    im.save(tmp, format={".jpg": "JPEG", ".jpeg": "JPEG"}.get(suffix, suffix[1:].upper()), **kwargs)


def _target(tmp: Path | io.BytesIO) -> Any:
    return str(tmp) if isinstance(tmp, Path) else tmp


def _write_png16_color(tmp: Path | io.BytesIO, q: np.ndarray, icc: bytes | None = None,
                       exif: bytes | None = None) -> None:
    """Minimal 16-bit RGB(A) PNG encoder (zlib), since Pillow writes only 8-bit colour; the ICC
    profile goes into an iCCP chunk and the EXIF block into an eXIf chunk, both before the pixels."""
    import struct
    import zlib

    h, w, c = q.shape
    color_type = {3: 2, 4: 6}[c]
    raw = q.astype(">u2").reshape(h, w * c)
    rows = b"".join(b"\x00" + raw[i].tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    meta = (chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)) if icc else b"") + (
        chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif) if exif else b"")
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + meta + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(
        b"IEND", b"")
    if isinstance(tmp, Path):
        tmp.write_bytes(data)
    else:
        tmp.write(data)


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (deterministic order)."""
    p = Path(folder)
    if not p.is_dir():
        raise InputError(f"{p}: not a folder")
    return sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in READ_SUFFIXES)


def load_gray_or_color(path: Path, color: bool) -> np.ndarray:
    """Load a dataset image as float32 [H, W] (gray, ITU-R 601 luma) or [H, W, 3]."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB" if color else "L"), dtype=np.float32) / 255.0
