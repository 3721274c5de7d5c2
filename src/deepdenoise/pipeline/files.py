"""File-level denoising: read, denoise, write atomically; the CLI's ``denoise`` calls this.

A folder input is processed recursively into an output folder with the same relative paths; an
unreadable file is skipped with a one-line reason, the rest go on, and the exit code says whether
anything failed.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepdenoise.astro.fits import is_fits
from deepdenoise.defaults import MAX_PIXELS
from deepdenoise.errors import Cancelled, DeepDenoiseError, InputError, OutputError
from deepdenoise.inference.api import LUMA, denoise_with_info
from deepdenoise.inference.backends import DEFAULT_BACKEND
from deepdenoise.io import READ_SUFFIXES, ImageData, read_image, write_image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DenoiseOptions:
    """How to denoise each file: :func:`deepdenoise.inference.api.denoise`'s arguments, plus ``gray``."""

    sigma: float | None = None  # Gaussian level, or read noise with noise='poisson'; None: estimate
    model: str | None = None
    tile: int | None = 512
    gray: bool = False  # colour images processed as luminance
    backend: str = DEFAULT_BACKEND
    noise: str = "auto"  # or 'gaussian', 'poisson' (photon-limited images), 'camera' (camera photos), 'impulse'
    peak: float | None = None  # photons at full scale (noise='poisson'); None: estimate
    pd_stride: int = 2  # noise='camera': pixel-shuffle stride
    strength: float = 1.0  # fraction of the luminance noise removed (colour noise: all of it)
    noise_scale: float = 1.0  # multiplies the level the model is given (estimated or sigma)
    max_pixels: int | None = MAX_PIXELS  # refused before decoding beyond this (all frames); None: no limit
    hdu: str | None = None  # FITS: one HDU (index or EXTNAME); default every image HDU
    gain: float | None = None  # FITS: electrons per data unit (default: the header's GAIN)
    read_noise: float | None = None  # FITS: electrons (default: the header's RDNOISE)
    density: float | None = None  # noise='impulse': fraction of corrupted samples; None: estimated
    device: str = "auto"  # where the network runs: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps
    ensemble: int = 1  # passes over flips/rotations averaged (1, 2, 4, 8): a little better, that many times slower


def denoise_file(src: Path, dst: Path, opts: DenoiseOptions = DenoiseOptions(), overwrite: bool = False,
                 show_progress: bool = False, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Denoise one image file into ``dst``; raises a :class:`DeepDenoiseError` on bad input/output.

    ``cancel``: once set (a web client hung up), the work stops at the next tile or frame with
    :class:`Cancelled`, so nobody's abandoned job holds a worker."""
    if dst.exists() and not overwrite:
        raise OutputError(f"{dst}: already exists (use --overwrite to replace it)")
    if dst.exists() and src.resolve() == dst.resolve():
        raise OutputError(f"{dst}: output would replace the input")
    if is_fits(src):
        return _denoise_fits(src, dst, opts, overwrite)
    if dst.suffix.lower() not in OUT_SUFFIXES:
        raise OutputError(f"{dst}: unsupported output format (use .png, .tif, .jpg, .webp or .bmp)")
    if opts.max_pixels is None and _streams(src, dst, opts):
        from deepdenoise.pipeline.stream import stream_denoise_tiff

        return stream_denoise_tiff(src, dst, opts, overwrite)
    img = read_image(src, opts.max_pixels)
    if img.stack_shape and dst.suffix.lower() not in (".tif", ".tiff"):  # found out before the work
        raise OutputError(f"{dst}: a stack of {img.pixels.shape[0]} frames can only be written as TIFF (.tif)")
    info = denoise_image(img, opts, src.name, show_progress, cancel)
    write_image(dst, img, overwrite=overwrite)
    return info


def denoise_image(img: ImageData, opts: DenoiseOptions = DenoiseOptions(), name: str = "image",
                  show_progress: bool = False, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Denoise a decoded image (every frame of a stack) in place; returns the report. Float data
    beyond [0, 1] is mapped onto it and back; ``opts.gray`` turns colour into luminance first."""
    if opts.gray and img.is_color:
        img.pixels = img.pixels @ LUMA  # [(N,) H, W]
    span = _float_span(img)
    if span:  # float data beyond [0, 1] (counts, calibrated units): the networks expect [0, 1]
        img.pixels -= span[0]
        img.pixels /= span[1] - span[0]
    frames = img.pixels if img.stack_shape else img.pixels[None]  # [N, H, W(, 3)], views
    t0 = time.perf_counter()
    infos = _denoise_frames(frames, opts, name, show_progress, cancel)
    if span:
        img.pixels *= span[1] - span[0]
        img.pixels += span[0]
        img.notes.append(f"float data in [{span[0]:.4g}, {span[1]:.4g}] denoised as [0, 1]")
    info = _stack_info(infos)
    info["seconds"] = time.perf_counter() - t0  # the denoising alone: no reading, writing or imports
    info["megapixels"] = frames.shape[0] * frames.shape[1] * frames.shape[2] / 1e6
    if img.camera and opts.noise in ("auto", "gaussian") and info["model"] != "camera":
        info["notes"].append(f"taken with a camera ({img.camera}): if grain remains, try --model camera "
                             "or --noise-scale 1.5")
    info["notes"] = img.notes + info["notes"]
    return info


def _denoise_frames(frames: np.ndarray, opts: DenoiseOptions, name: str, show_progress: bool,
                    cancel: threading.Event | None) -> list[dict[str, Any]]:
    """Denoise each frame of frames: [N, H, W(, 3)] in place; a progress bar on large images; the
    work stops at the next tile once ``cancel`` is set."""
    tile = opts.tile
    bar = None
    if show_progress and tile and frames.shape[0] * frames.shape[1] * frames.shape[2] > 4 * tile * tile:
        from tqdm import tqdm

        bar = tqdm(desc=name, unit="tile", file=sys.stderr, leave=False)

    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled: the client went away")

    def tick(done: int, total: int) -> None:
        check_cancel()
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    infos = []
    try:
        for i in range(frames.shape[0]):
            check_cancel()
            res = denoise_with_info(frames[i], sigma=opts.sigma, model=opts.model, tile=tile, progress=tick,
                                    backend=opts.backend, overwrite_input=True, device=opts.device,  # in place
                                    noise=opts.noise, peak=opts.peak, pd_stride=opts.pd_stride,
                                    strength=opts.strength, noise_scale=opts.noise_scale, density=opts.density,
                                    ensemble=opts.ensemble)
            frames[i] = res.image
            infos.append(res.info)
    finally:
        if bar is not None:
            bar.close()
    return infos


def _stack_info(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """One report for all frames of a stack (the first frame's, with the mean level)."""
    info = infos[0]
    if len(infos) > 1:
        levels = [i["sigma"] for i in infos]
        info["sigma"] = float(np.mean(levels))
        info["notes"] = sorted({n for i in infos for n in i["notes"]})
        if max(levels) - min(levels) > 0.5:
            info["notes"].append(f"per-frame noise level {min(levels):.1f}-{max(levels):.1f}")
    return info


def _streams(src: Path, dst: Path, opts: DenoiseOptions) -> bool:
    """Whether a file goes the bounded-memory way (:mod:`deepdenoise.pipeline.stream`): the limit lifted, a
    TIFF beyond ``STREAM_ABOVE`` pixels written as TIFF, and the plain Gaussian path asked for."""
    from deepdenoise.io import read_header
    from deepdenoise.pipeline.stream import STREAM_ABOVE, can_stream

    header = read_header(src)
    return (header.pixels > STREAM_ABOVE and can_stream(src, header) and dst.suffix.lower() in (".tif", ".tiff")
            and opts.noise in ("auto", "gaussian") and not opts.gray and opts.strength == 1 and opts.ensemble == 1)


def _denoise_fits(src: Path, dst: Path, opts: DenoiseOptions, overwrite: bool) -> dict[str, Any]:
    from deepdenoise.astro import require_astropy

    require_astropy()
    from deepdenoise.astro.pipeline import AstroOptions, denoise_fits_file

    if opts.noise not in ("auto", "gaussian", "poisson"):
        raise InputError(f"{src}: --noise {opts.noise} does not apply to FITS data (auto, gaussian or poisson)")
    if opts.ensemble != 1:
        raise InputError(f"{src}: --ensemble does not apply to FITS data")
    astro = AstroOptions(opts.noise, opts.gain, opts.read_noise, opts.hdu, opts.model, opts.tile, opts.backend,
                         opts.max_pixels)
    return denoise_fits_file(src, dst, astro, overwrite)


def _float_span(img: ImageData) -> tuple[float, float] | None:
    """The range to map onto [0, 1] for float data that is not already in it (else None)."""
    if img.bit_depth != 32:
        return None
    lo, hi = float(img.pixels.min()), float(img.pixels.max())
    if lo >= -0.5 and hi <= 1.5:  # [0, 1] data with noise overshoot: as it is
        return None
    return min(lo, 0.0), hi


def describe(src: Path, dst: Path, info: dict[str, Any]) -> str:
    how = "estimated" if info["sigma_estimated"] else "given"
    if info.get("noise_level"):
        how += ", per brightness and channel"
    if info.get("noise_scale", 1.0) != 1.0:
        how += f", x{info['noise_scale']:g}"
    if info.get("blind_estimate") is not None and info["sigma"] > info["blind_estimate"] / 0.85:  # clearly above
        how += f"; a blind model removes what it estimates ({info['blind_estimate']:.1f}), not more"
    if info.get("noise") == "astro":
        how = info["astro"]
    elif info.get("noise") == "impulse" and str(info.get("restoration", "")).startswith("mask model"):
        how = (f"impulses: {info['impulse_density']:.2%} of the samples flagged; {info['restoration']}: Gaussian part "
               f"{info['sigma']:.1f} measured and removed in the same pass"
               + ("" if info["sigma_estimated"] else "; a given sigma is not used"))
    elif info.get("noise") == "impulse":
        how = (f"impulses: {info['impulse_density']:.2%} of the samples restored; Gaussian part {info['sigma']:.1f} "
               + ("estimated" if info["sigma_estimated"] else "given"))
    elif info.get("noise") == "poisson":
        how = (f"stabilised; Poisson peak {info['peak']:.3g} photons, read noise {info['read_sigma']:.2g}, "
               + ("estimated" if info["sigma_estimated"] else "given"))
    elif info.get("noise") == "camera":
        how = f"{how}; real noise, " + (f"pixel-shuffle stride {info['pd_stride']}" if info["pd_stride"] > 1
                                         else "no pixel-shuffle")
    if info.get("strength") is not None:
        how += f"; strength {info['strength']:g}"
    if info.get("ensemble"):
        how += f"; mean of {info['ensemble']} flips/rotations"
    notes = f" ({'; '.join(info['notes'])})" if info.get("notes") else ""
    backend = f" backend={info['backend']}" if info.get("backend") else ""
    speed = (f" {info['megapixels']:.2f} MP in {info['seconds']:.2f} s" if info.get("seconds") else "")
    return f"{src} -> {dst}  model={info['model']} sigma={info['sigma']:.1f} ({how}){backend}{speed}{notes}"


OUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp")


def folder_jobs(src: Path, dst: Path, hidden: bool = False) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(input, output) pairs for every regular file under ``src``, and one line for each entry
    passed over and why. Hidden files and folders are passed over unless ``hidden``; symbolic links
    to folders are not followed (no loops); FIFOs, sockets and devices are never opened."""
    jobs: list[tuple[Path, Path]] = []
    skipped: list[str] = []
    for root, dirs, files in os.walk(src, onerror=lambda e: skipped.append(f"{e.filename}: skipped, {e.strerror}")):
        here = Path(root)
        for d in sorted(dirs):
            if d.startswith(".") and not hidden:
                skipped.append(f"{here / d}: skipped, hidden folder (use --hidden)")
        dirs[:] = sorted(d for d in dirs if hidden or not d.startswith("."))
        for name in sorted(files):
            f = here / name
            why = _not_a_job(f, hidden)
            if why:
                skipped.append(f"{f}: skipped, {why}")
                continue
            out = dst / f.relative_to(src)
            if f.suffix.lower() not in OUT_SUFFIXES and not is_fits(f):
                out = out.with_suffix(".png")  # GIF, PGM and unknown suffixes are written as PNG
            jobs.append((f, out))
    return sorted(jobs), skipped


def _not_a_job(f: Path, hidden: bool) -> str | None:
    """Why a folder entry is not denoised (None: it is)."""
    import stat

    if f.name.startswith(".") and not hidden:
        return "hidden file (use --hidden)"
    try:
        mode = os.stat(f).st_mode
    except OSError as exc:
        return exc.strerror or "cannot be read"
    if stat.S_ISDIR(mode):
        return "link to a folder (not followed)"
    if not stat.S_ISREG(mode):
        kind = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device or special file"
        return f"{kind}, not a regular file"
    if f.suffix.lower() not in READ_SUFFIXES and not is_fits(f) and not _looks_like_image(f):
        return "not an image file"
    return None


def denoise_folder(src: Path, dst: Path, opts: DenoiseOptions = DenoiseOptions(), overwrite: bool = False,
                   jobs: int = 1, progress: bool = True, hidden: bool = False) -> tuple[int, list[str], list[str]]:
    """Denoise every file under ``src`` into ``dst``; returns (number done, failure lines, skipped lines)."""
    from tqdm import tqdm

    if dst.exists() and not dst.is_dir():
        raise OutputError(f"{dst}: exists and is not a folder")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise OutputError(f"{dst}: output folder must not be inside the input folder")
    work, skipped = folder_jobs(src, dst, hidden)
    for line in skipped:
        log.warning("%s", line)
    if not work:
        raise InputError(f"{src}: no image files to denoise" + (f" ({len(skipped)} skipped)" if skipped else ""))
    failures: list[str] = []
    done = 0

    def one(job: tuple[Path, Path]) -> str | None:
        f, out = job
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            denoise_file(f, out, opts, overwrite)
        except DeepDenoiseError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool, \
            tqdm(total=len(work), unit="img", disable=not progress, file=sys.stderr) as bar:
        for err in pool.map(one, work):
            bar.update(1)
            if err:
                failures.append(err)
                log.warning("skipped: %s", err)
            else:
                done += 1
    return done, failures, skipped


def _looks_like_image(path: Path) -> bool:
    """Whether a file with an unknown suffix starts like an image (a bounded 12-byte read)."""
    with open(path, "rb") as f:
        head = f.read(12)
    return head.startswith((b"\x89PNG", b"\xff\xd8", b"II*\0", b"MM\0*", b"GIF8", b"BM")) or head[8:12] == b"WEBP"
