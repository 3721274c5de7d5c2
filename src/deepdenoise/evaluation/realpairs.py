"""Real noisy/clean photo pairs: the yardstick for camera noise.

A simulator can only say how well a model undoes the simulator. Pairs of a real noisy shot and a
clean reference of the same static scene (the mean of many shots, as in PolyU, or a low-ISO shot,
as in SIDD/DND) say how well it undoes a camera. Any folder of such pairs works: files named
``*_real.*`` / ``*_mean.*`` (PolyU), ``*_noisy.*`` / ``*_clean.*`` or ``*_gt.*``, ``*NOISY*`` /
``*GT*``, or two subfolders ``noisy/`` and ``clean/`` (or ``gt/``) with the same file names.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepdenoise.errors import InputError

# (noisy token, clean tokens): the clean file's name is the noisy one's with its last token replaced
PAIR_TOKENS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("_real", ("_mean",)), ("_noisy", ("_clean", "_gt", "_GT")), ("NOISY", ("GT", "CLEAN")),
    ("noisy", ("clean", "gt")))
CLEAN_DIRS = ("clean", "gt", "GT", "mean")


@dataclass(frozen=True)
class Pair:
    noisy: Path
    clean: Path

    @property
    def name(self) -> str:
        return self.noisy.name


def _counterpart(path: Path) -> Path | None:
    name = path.name
    for noisy, cleans in PAIR_TOKENS:
        at = name.rfind(noisy)
        if at < 0:
            continue
        for clean in cleans:
            candidate = path.with_name(name[:at] + clean + name[at + len(noisy):])
            if candidate.is_file():
                return candidate
    return None


def find_pairs(folder: str | Path, pattern: str | None = None, limit: int | None = None) -> list[Pair]:
    """The (noisy, clean) pairs in ``folder``, sorted by name; ``pattern`` (a glob on file names)
    picks the noisy files. Raises InputError when there are none."""
    from deepdenoise.io import list_images

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    noisy_dir = root / "noisy"
    pairs: list[Pair] = []
    if noisy_dir.is_dir():
        clean_dir = next((root / d for d in CLEAN_DIRS if (root / d).is_dir()), None)
        if clean_dir is not None:
            pairs = [Pair(f, clean_dir / f.name) for f in list_images(noisy_dir) if (clean_dir / f.name).is_file()]
    if not pairs:
        for f in list_images(root):
            if pattern is not None and not fnmatch.fnmatch(f.name, pattern):
                continue
            if pattern is None and not any(tok in f.name for tok, _ in PAIR_TOKENS):
                continue
            clean = _counterpart(f)
            if clean is not None and clean != f:
                pairs.append(Pair(f, clean))
    if pattern is not None:
        pairs = [p for p in pairs if fnmatch.fnmatch(p.noisy.name, pattern)]
    if not pairs:
        raise InputError(f"{root}: no noisy/clean pairs found (names like X_real.jpg + X_mean.jpg, "
                         "X_noisy.png + X_clean.png, or folders noisy/ and clean/)")
    pairs.sort(key=lambda p: p.name)
    return pairs[:limit] if limit else pairs


def load_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) as float32 in [0, 1], [H, W] or [H, W, 3], checked to match."""
    from deepdenoise.io import read_image

    noisy, clean = read_image(pair.noisy), read_image(pair.clean)
    if noisy.stack_shape or clean.stack_shape:
        raise InputError(f"{pair.noisy.name}: stacks are not pairs of images")
    a, b = noisy.pixels, clean.pixels
    if a.shape != b.shape:
        raise InputError(f"{pair.noisy.name}: shape {a.shape} differs from its reference's {b.shape}")
    return np.ascontiguousarray(a, dtype=np.float32), np.ascontiguousarray(b, dtype=np.float32)


def score_pairs(fn: Callable[[np.ndarray], np.ndarray], data: list[tuple[str, np.ndarray, np.ndarray]],
                with_ssim: bool = True) -> dict[str, Any]:
    """Mean PSNR/SSIM of ``fn(noisy)`` against the references, and its speed (megapixels per
    second over the whole set, one pass)."""
    from deepdenoise.metrics import psnr, ssim

    rows, seconds, pixels = [], 0.0, 0
    for name, noisy, clean in data:
        t0 = time.perf_counter()
        out = fn(noisy)
        seconds += time.perf_counter() - t0
        pixels += noisy.shape[0] * noisy.shape[1]
        rows.append({"name": name, "psnr_noisy": psnr(noisy, clean), "psnr": psnr(out, clean),
                     "ssim_noisy": ssim(noisy, clean) if with_ssim else float("nan"),
                     "ssim": ssim(out, clean) if with_ssim else float("nan")})
    return {"images": len(rows), "psnr_noisy": float(np.mean([r["psnr_noisy"] for r in rows])),
            "psnr": float(np.mean([r["psnr"] for r in rows])), "ssim": float(np.mean([r["ssim"] for r in rows])),
            "ssim_noisy": float(np.mean([r["ssim_noisy"] for r in rows])),
            "mp_per_s": pixels / 1e6 / max(seconds, 1e-9), "per_image": rows}


def load_pairs(folder: str | Path, pattern: str | None = None,
               limit: int | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    return [(p.name, *load_pair(p)) for p in find_pairs(folder, pattern, limit)]
