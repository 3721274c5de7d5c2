"""Typed training configuration, loadable from YAML and saved next to every run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from deepdenoise.errors import DeepDenoiseError


@dataclass
class TrainConfig:
    model: str = "dncnn_s"  # registry preset
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data: str = "data/patches"  # patches folder (train.npy/test.npy) or image folders (see data_mode)
    data_mode: str = "patches"  # "patches": pre-extracted; "images": random crops of whole images
    image_dirs: list[str] = field(default_factory=list)  # for data_mode="images"
    val: str | None = None  # test patches .npy; default DATA/test.npy
    val_limit: int | None = None  # evaluate on the first N test patches only
    color: bool = False
    patch_size: int = 40
    batch_size: int = 128
    sigma: float = 25.0  # fixed noise level (0-255 scale) ...
    sigma_max: float | None = None  # ... or blind: uniform in [sigma, sigma_max] per patch
    val_sigma: float | None = None  # noise level of the validation PSNR (default: sigma, or 25 blind)
    noise: str = "gaussian"  # or "camera": simulated camera noise (deepdenoise.realnoise), colour only
    camera_shot_max: float = 0.1  # camera noise: shot (variance per unit of linear light), uniform in [0, max]
    camera_read_max: float = 0.025  # camera noise: read noise std, uniform in [0, max]
    camera_jpeg: float = 0.0  # camera noise: fraction of patches saved as JPEG (quality 75-95)
    camera_isp: bool = False  # camera noise: random white balance, colour matrix and tone curve per patch
    camera_mix: float = 0.0  # camera noise: fraction of patches given Gaussian noise instead (keeps that skill)
    noise_maps: str = "constant"  # Gaussian noise: "constant" (one sigma per patch) or "varying" (see noise.py)
    map_jitter: float = 0.0  # noise-map models: the map they are given is off by exp(N(0, jitter)) per patch
    map_partial: float = 0.0  # noise-map models: fraction of patches told a lower level, to remove only that much
    epochs: int = 30
    steps_per_epoch: int | None = None  # default: all patches once (patches), 1000 (images)
    lr: float = 1e-3
    lr_decay: float = 0.95  # multiply lr after every epoch
    lr_schedule: str = "exponential"  # or "cosine" (over all steps, to lr_min)
    lr_min: float = 1e-6
    loss: str = "mse"  # or "l1"
    weight_decay: float = 0.0
    grad_clip: float | None = None  # clip the gradients' global L2 norm to this (a norm-free net at a high lr)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bfloat16 autocast (CPU with AVX-512 BF16, or CUDA)
    checkpoint_minutes: float = 10.0
    max_minutes: float | None = None  # stop after this much training time (budgeted comparisons)
    precise_bn_batches: int = 0  # at the end, re-estimate batch-norm statistics over N batches
    init_from: str | None = None  # start from these weights (fine-tuning); optimizer starts fresh
    out: str = "runs/dncnn_s_sigma25"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise DeepDenoiseError(f"unknown config keys: {', '.join(sorted(unknown))}")
        cfg = cls(**d)
        if cfg.noise not in ("gaussian", "camera"):
            raise DeepDenoiseError(f"noise must be 'gaussian' or 'camera' (got {cfg.noise!r})")
        if cfg.noise_maps not in ("constant", "varying"):
            raise DeepDenoiseError(f"noise_maps must be 'constant' or 'varying' (got {cfg.noise_maps!r})")
        if not 0 <= cfg.map_partial <= 1:
            raise DeepDenoiseError(f"map_partial must be between 0 and 1 (got {cfg.map_partial})")
        if not 0 <= cfg.camera_mix <= 1:
            raise DeepDenoiseError(f"camera_mix must be between 0 and 1 (got {cfg.camera_mix})")
        if cfg.noise == "camera" and not cfg.color:
            raise DeepDenoiseError("noise: camera simulates a colour (Bayer) sensor; it needs color: true")
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        import yaml

        p = Path(path)
        if not p.exists():
            raise DeepDenoiseError(f"{p}: no such config file")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise DeepDenoiseError(f"{p}: config must be a mapping")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)
