"""Typed training configuration, loadable from YAML and saved next to every run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from deepdenoise.errors import DeepDenoiseError


@dataclass
class TrainConfig:
    model: str = "dncnn_s"  # registry preset
    model_overrides: dict[str, Any] = field(default_factory=dict)
    data: str = "data/patches"  # patches folder (train.npy/test.npy) or image folders (see data_mode)
    data_mode: Literal["patches", "images"] = "patches"  # pre-extracted patches, or random crops of whole images
    image_dirs: list[str] = field(default_factory=list)  # for data_mode="images"
    val: str | None = None  # test patches .npy; default DATA/test.npy
    val_limit: int | None = None  # evaluate on the first N test patches only
    color: bool = False
    patch_size: int = 40
    batch_size: int = 128
    sigma: float = 25.0  # fixed noise level (0-255 scale) ...
    sigma_max: float | None = None  # ... or blind: uniform in [sigma, sigma_max] per patch
    val_sigma: float | None = None  # noise level of the validation PSNR (default: sigma, or 25 blind)
    noise: Literal["gaussian", "camera", "impulse"] = "gaussian"  # camera: simulated camera noise, colour only;
    # impulse: salt-and-pepper, random-valued impulses and bit errors, for a mask model (mask_input)
    camera_shot_max: float = 0.1  # camera noise: shot (variance per unit of linear light), uniform in [0, max]
    camera_read_max: float = 0.025  # camera noise: read noise std, uniform in [0, max]
    camera_jpeg: float = 0.0  # camera noise: fraction of patches saved as JPEG (quality 75-95)
    camera_isp: bool = False  # camera noise: random white balance, colour matrix and tone curve per patch
    camera_profile: Literal["basic", "incamera"] = "basic"  # camera noise: incamera adds the camera's own noise
    # reduction (blotchy chroma, coarse luma grain), mild levels (log-uniform) and high-quality JPEG
    camera_mix: float = 0.0  # camera noise: fraction of patches given Gaussian noise instead (keeps that skill)
    noise_maps: Literal["constant", "varying"] = "constant"  # one sigma per patch, or varying maps (noise.py)
    map_jitter: float = 0.0  # noise-map models: the map they are given is off by exp(N(0, jitter)) per patch
    map_partial: float = 0.0  # noise-map models: fraction of patches told a lower level, to remove only that much
    map_estimated: float = 0.0  # noise-map models: fraction of patches told the level estimated from them (blind use)
    map_over: float = 0.0  # noise-map models: fraction of patches told up to twice their level (more sigma, smoother)
    epochs: int = 30
    steps_per_epoch: int | None = None  # default: all patches once (patches), 1000 (images)
    lr: float = 1e-3
    lr_decay: float = 0.95  # multiply lr after every epoch
    lr_schedule: Literal["exponential", "cosine"] = "exponential"  # or "cosine" (over all steps, to lr_min)
    lr_min: float = 1e-6
    loss: Literal["mse", "l1"] = "mse"  # or "l1"
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
        cfg.validate()
        return cfg

    def __post_init__(self) -> None:
        self.validate()  # a config is checked when it is made: TrainConfig(loss="L1") fails at once

    def validate(self) -> None:
        """Every field's value against its annotation (choices of a ``Literal``, numbers, strings),
        then the ranges and combinations; a typo is an error, never a silent default."""
        for name, hint in get_type_hints(type(self)).items():
            _check_field(name, hint, getattr(self, name))
        cfg = self
        for name in ("map_partial", "map_estimated", "map_over"):
            if not 0 <= getattr(cfg, name) <= 1:
                raise DeepDenoiseError(f"{name} must be between 0 and 1 (got {getattr(cfg, name)})")
        if not 0 <= cfg.camera_mix <= 1:
            raise DeepDenoiseError(f"camera_mix must be between 0 and 1 (got {cfg.camera_mix})")
        if cfg.noise == "camera" and not cfg.color:
            raise DeepDenoiseError("noise: camera simulates a colour (Bayer) sensor; it needs color: true")
        if (cfg.noise == "impulse") != bool(cfg.model_overrides.get("mask_input", False)):
            raise DeepDenoiseError("noise: impulse trains a mask model and a mask model needs it: set both "
                                   "noise: impulse and model_overrides: {mask_input: true}")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        import yaml

        p = Path(path)
        if not p.exists():
            raise DeepDenoiseError(f"{p}: no such config file")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise DeepDenoiseError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise DeepDenoiseError(f"{p}: config must be a mapping")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _check_field(name: str, hint: Any, value: Any) -> None:
    """Raise :class:`DeepDenoiseError` unless ``value`` fits the field's type annotation."""
    options = get_args(hint) if get_origin(hint) in (Union, UnionType) else ()
    if get_origin(hint) is Literal:
        if value not in get_args(hint):
            choices = ", ".join(repr(c) for c in get_args(hint))
            raise DeepDenoiseError(f"{name} must be one of {choices} (got {value!r:.60})")
        return
    allowed = [a for a in (options or (hint,)) if a is not type(None)]
    if value is None:
        if type(None) in options:
            return
        raise DeepDenoiseError(f"{name} must not be empty")
    plain = [get_origin(a) or a for a in allowed]
    if float in plain and isinstance(value, int) and not isinstance(value, bool):
        return  # YAML writes 1 for 1.0
    if any(isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in plain if isinstance(t, type)
           and t is not Any):
        return
    names = " or ".join(getattr(t, "__name__", str(t)) for t in plain)
    raise DeepDenoiseError(f"{name} must be {names} (got {value!r:.60})")


def field_help() -> dict[str, str]:
    """Each field's comment in the class body: the help of its command-line flag."""
    import inspect
    import re

    found = {}
    for line in inspect.getsource(TrainConfig).splitlines():
        m = re.match(r"\s+(\w+): [^=]+=[^#]*#\s*(.+)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


def flag_spec(hint: Any) -> dict[str, Any]:
    """argparse keywords for a field's annotation: Literal -> choices, bool -> --x/--no-x,
    numbers and strings typed, dict -> JSON, list -> several values."""
    import argparse
    import json

    args = [a for a in get_args(hint) if a is not type(None)]
    base = args[0] if get_origin(hint) in (Union, UnionType) and len(args) == 1 else hint
    if get_origin(base) is Literal:
        return {"choices": list(get_args(base))}
    if base is bool:
        return {"action": argparse.BooleanOptionalAction}
    if base in (int, float, str):
        return {"type": base}
    if get_origin(base) is dict:
        return {"type": json.loads, "metavar": "JSON"}
    if get_origin(base) is list:
        return {"nargs": "+"}
    raise TypeError(f"no flag for {hint!r}")


def config_flags() -> list[tuple[str, dict[str, Any]]]:
    """(flag, argparse keywords) for every field of :class:`TrainConfig`, so every field is settable
    from the command line; a flag not given leaves the config's value."""
    help_ = field_help()
    return [(f"--{name.replace('_', '-')}", {"dest": name, "default": None, "help": help_.get(name), **flag_spec(hint)})
            for name, hint in get_type_hints(TrainConfig).items()]
