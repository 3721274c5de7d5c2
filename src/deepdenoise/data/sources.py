"""Training batch sources whose every batch is a pure function of (seed, step).

That is what makes runs resumable and shardable without saving RNG state: a resumed run, or a
run over N processes, draws exactly the batches the uninterrupted single-process run would have.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepdenoise.errors import InputError


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step * 7919 + stream * 104_729) % (2**63 - 1))
    return g


class PatchSource:
    """Pre-extracted uint8 patches [N, P, P(, C)]; epoch-wise permutation seeded by (seed, epoch)."""

    def __init__(self, patches: np.ndarray, batch_size: int, seed: int = 0) -> None:
        if patches.ndim == 3:
            patches = patches[:, None]  # [N, 1, P, P]
        else:
            patches = np.ascontiguousarray(np.moveaxis(patches, -1, 1))  # [N, C, P, P]
        self.data = torch.from_numpy(patches)
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = len(self.data) // batch_size
        self._perm_epoch = -1
        self._perm = torch.empty(0, dtype=torch.long)

    @classmethod
    def from_file(cls, path: str | Path, batch_size: int, seed: int = 0) -> PatchSource:
        p = Path(path)
        if not p.exists():
            raise InputError(f"{p}: missing; run 'deepdenoise prepare' first")
        return cls(np.load(p, mmap_mode=None, allow_pickle=False), batch_size, seed)

    @property
    def channels(self) -> int:
        return int(self.data.shape[1])

    def batch(self, step: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        """uint8 [B/world, C, P, P]: rank's shard of the global batch at ``step``."""
        epoch, i = divmod(step, self.steps_per_epoch)
        if epoch != self._perm_epoch:
            self._perm = torch.randperm(len(self.data), generator=step_generator(self.seed, epoch, 1))
            self._perm_epoch = epoch
        idx = self._perm[i * self.batch_size:(i + 1) * self.batch_size]
        return self.data[idx.chunk(world)[rank]]


class CropSource:
    """Random crops (with random flips/rotations) from whole images held in memory as uint8."""

    def __init__(self, images: list[np.ndarray], patch_size: int, batch_size: int, seed: int = 0,
                 steps_per_epoch: int = 1000) -> None:
        self.images = [torch.from_numpy(np.ascontiguousarray(
            im[None] if im.ndim == 2 else np.moveaxis(im, -1, 0))) for im in images]  # [C, H, W]
        small = [im.shape for im in self.images if min(im.shape[1:]) < patch_size]
        if small:
            raise InputError(f"{len(small)} training images are smaller than the patch size {patch_size}")
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = steps_per_epoch

    @classmethod
    def from_folders(cls, folders: list[str | Path], color: bool, patch_size: int, batch_size: int,
                     seed: int = 0, steps_per_epoch: int = 1000) -> CropSource:
        from PIL import Image

        from deepdenoise.io import list_images

        images = []
        for folder in folders:
            for f in list_images(folder):
                with Image.open(f) as im:
                    images.append(np.array(im.convert("RGB" if color else "L")))
        if not images:
            raise InputError(f"no training images in {', '.join(map(str, folders))}")
        return cls(images, patch_size, batch_size, seed, steps_per_epoch)

    @property
    def channels(self) -> int:
        return int(self.images[0].shape[0])

    def batch(self, step: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        g = step_generator(self.seed, step, 2)
        n, p = self.batch_size, self.patch_size
        which = torch.randint(len(self.images), (n,), generator=g)
        u = torch.rand(n, 2, generator=g)
        modes = torch.randint(8, (n,), generator=g)
        lo = rank * (n // world)
        out = []
        for k in range(lo, lo + n // world):
            im = self.images[int(which[k])]
            y = int(u[k, 0] * (im.shape[1] - p + 1))
            x = int(u[k, 1] * (im.shape[2] - p + 1))
            crop = im[:, y:y + p, x:x + p]  # [C, P, P]
            m = int(modes[k])
            if m >= 4:
                crop = crop.flip(1)
            out.append(torch.rot90(crop, m % 4, dims=(1, 2)))
        return torch.stack(out)  # [B/world, C, P, P]
