"""The DnCNN paper's patch sets, deterministic and cached.

How patches are chosen (per image, independent of the order images are listed in):
  1. the image is converted to gray (ITU-R 601 luma, as PIL's "L") or kept RGB with ``color``;
  2. it is resized (bicubic, in float) to scales 1.0, 0.9, 0.8 and 0.7, as in DnCNN;
  3. every 40x40 window on a stride-10 grid of every scale is a candidate (~3,000 per image);
  4. 214 candidates are drawn without replacement by a RNG seeded from (seed, file name);
  5. training patches get one of the 8 flips/rotations, drawn by the same RNG; test patches none.
400 training images x 214 = 85,600 patches; 100 test images x 214 = 21,400.
"""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from deepdenoise.errors import InputError
from deepdenoise.fsutil import atomic_write_bytes, atomic_write_text


@dataclass
class PatchConfig:
    patch_size: int = 40
    stride: int = 10
    scales: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7)
    per_image: int = 214
    seed: int = 0
    color: bool = False
    train_splits: tuple[str, ...] = ("train", "test")
    test_splits: tuple[str, ...] = ("val",)
    version: int = 1
    extra: dict[str, str] = field(default_factory=dict)


def split_files(root: Path, splits: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for s in splits:
        d = root / s
        if not d.is_dir():
            raise InputError(f"{d}: missing; expected a BSDS500 folder with {{train,val,test}}/*.jpg")
        files += sorted(d.glob("*.jpg"))
    if not files:
        raise InputError(f"{root}: no .jpg images in {', '.join(splits)}")
    return files


def dihedral(a: np.ndarray, mode: int) -> np.ndarray:
    """One of the 8 flips/rotations of an [H, W, ...] array."""
    if mode >= 4:
        a = np.flipud(a)
    return np.rot90(a, k=mode % 4)


def image_patches(path: Path, cfg: PatchConfig, augment: bool) -> np.ndarray:
    """The ``cfg.per_image`` patches of one image: uint8 [N, P, P] or [N, P, P, 3]."""
    from PIL import Image

    with Image.open(path) as src:
        im = src.convert("RGB" if cfg.color else "L")
        planes = im.split()
        p, st = cfg.patch_size, cfg.stride
        candidates: list[tuple[int, int, int]] = []
        scaled: list[np.ndarray] = []
        for si, s in enumerate(cfg.scales):
            w, h = max(1, round(im.width * s)), max(1, round(im.height * s))
            chans = [np.asarray(b.convert("F").resize((w, h), Image.Resampling.BICUBIC)) for b in planes]
            arr = np.stack(chans, axis=-1) if cfg.color else chans[0]  # [h, w(, 3)]
            scaled.append(arr)
            for y in range(0, h - p + 1, st):
                for x in range(0, w - p + 1, st):
                    candidates.append((si, y, x))
    if len(candidates) < cfg.per_image:
        raise InputError(f"{path}: too small for {cfg.per_image} patches of {p}x{p}")
    name_key = zlib.crc32(path.name.encode())
    rng = np.random.default_rng([cfg.seed, name_key])
    chosen = rng.choice(len(candidates), size=cfg.per_image, replace=False)
    modes = rng.integers(0, 8, size=cfg.per_image) if augment else np.zeros(cfg.per_image, int)
    out = []
    for ci, mode in zip(chosen, modes):
        si, y, x = candidates[ci]
        patch = scaled[si][y:y + p, x:x + p]
        out.append(dihedral(patch, int(mode)))
    return np.clip(np.round(np.stack(out)), 0, 255).astype(np.uint8)


VAL_CROP = 160  # a multiple of every model's size multiple (16 for unet_fast)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def center_crop(path: Path, size: int, color: bool) -> np.ndarray:
    """The central size x size crop of an image: uint8 [P, P] or [P, P, 3].

    40x40 patches are too small to validate networks that see 100+ pixels of context (U-Nets
    pad them and score their edges), so ``prepare`` also writes one crop per test image.
    """
    from PIL import Image

    with Image.open(path) as src:
        a = np.asarray(src.convert("RGB" if color else "L"))
    h, w = a.shape[:2]
    if h < size or w < size:
        raise InputError(f"{path}: smaller than the {size}x{size} validation crop")
    y, x = (h - size) // 2, (w - size) // 2
    return a[y:y + size, x:x + size].copy()


def _fingerprint(files: list[Path], cfg: PatchConfig) -> str:
    h = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode())
    for f in files:
        h.update(f.name.encode())
        h.update(str(f.stat().st_size).encode())
    return h.hexdigest()[:16]


def prepare_patches(
    root: str | Path, out: str | Path, cfg: PatchConfig | None = None, force: bool = False,
    progress: bool = True,
) -> dict[str, int]:
    """Write OUT/train.npy, OUT/test.npy and OUT/test_crops.npy (one central crop per test image;
uint8; ``_color`` names for RGB) plus a manifest.

Cached: nothing is recomputed when the manifest's fingerprint (config, file names and sizes)
matches."""
    from tqdm import tqdm

    cfg = cfg or PatchConfig()
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    sets = {"train": split_files(root, cfg.train_splits), "test": split_files(root, cfg.test_splits)}
    tag = "_color" if cfg.color else ""
    manifest_path = out / f"manifest{tag}.json"
    fp = {k: _fingerprint(v, cfg) for k, v in sets.items()}
    if manifest_path.exists() and not force:
        old = json.loads(manifest_path.read_text())
        names = [*sets, "test_crops"]
        if old.get("fingerprints") == fp and all((out / f"{k}{tag}.npy").exists() for k in names):
            return {k: int(v) for k, v in old["counts"].items()}
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, files in sets.items():
        arrays = [image_patches(f, cfg, augment=(name == "train"))
                  for f in tqdm(files, desc=f"{name} patches", disable=not progress)]
        data = np.concatenate(arrays)
        buf = io.BytesIO()
        np.save(buf, data)
        atomic_write_bytes(out / f"{name}{tag}.npy", buf.getvalue())
        counts[name] = int(data.shape[0])
    size = min(VAL_CROP, *(min(_image_size(f)) for f in sets["test"])) // 16 * 16
    crops = np.stack([center_crop(f, size, cfg.color) for f in sets["test"]])  # [N, P, P(, 3)]
    buf = io.BytesIO()
    np.save(buf, crops)
    atomic_write_bytes(out / f"test_crops{tag}.npy", buf.getvalue())
    manifest = {"counts": counts, "images": {k: len(v) for k, v in sets.items()},
                "config": asdict(cfg), "fingerprints": fp, "source": str(root)}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    return counts
