"""The weight format: safetensors tensors + JSON metadata, never pickle.

A weight file ``NAME.safetensors`` sits beside ``NAME.json``, which carries the architecture and
its config, the format version, and the training provenance (command, data, steps, measured PSNR).
Everything read is checked before use, since a weight file may come from anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from deepdenoise.errors import ModelError
from deepdenoise.fsutil import atomic_write_bytes, atomic_write_text
from deepdenoise.models import Denoiser, build_model, model_meta

FORMAT_VERSION = 1
def save_weights(
    model: Denoiser, path: str | Path, meta: dict[str, Any] | None = None, half: bool = False
) -> Path:
    """Save ``model`` as PATH.safetensors + PATH.json (atomically). Returns the tensor file path."""
    from safetensors.torch import save

    p = Path(path).with_suffix(".safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    info = {"format_version": FORMAT_VERSION, **model_meta(model), **(meta or {})}
    info["dtype"] = "float16" if half else "float32"
    atomic_write_bytes(p, save(state))
    atomic_write_text(p.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return p


def read_meta(path: str | Path) -> dict[str, Any]:
    """A weight file's metadata, checked to be an object naming an architecture and its config."""
    p = Path(path).with_suffix(".json")
    if not p.exists():
        raise ModelError(f"{p}: metadata file missing next to the weights")
    if p.stat().st_size > 10_000_000:
        raise ModelError(f"{p}: metadata file too large ({p.stat().st_size} bytes)")
    try:
        meta = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{p}: corrupt metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{p}: metadata must be a JSON object (got {type(meta).__name__})")
    version = meta.get("format_version", 0)
    if not isinstance(version, int):
        raise ModelError(f"{p}: format_version must be an integer (got {version!r:.20})")
    if version > FORMAT_VERSION:
        raise ModelError(f"{p}: format version {version} is newer than this package")
    if not isinstance(meta.get("architecture"), str) or not isinstance(meta.get("config"), dict):
        raise ModelError(f"{p}: metadata needs 'architecture' (a name) and 'config' (an object)")
    return meta


def load_weights(path: str | Path) -> tuple[Denoiser, dict[str, Any]]:
    """Load a model from PATH.safetensors + PATH.json (fp32, eval mode).

    Everything is checked before use: the metadata's config (types, ranges, size) before the
    network is built, the tensors' names and shapes against it, and the weights' finiteness."""
    from safetensors.torch import load_file

    p = Path(path).with_suffix(".safetensors")
    if not p.exists():
        raise ModelError(f"{p}: no such weight file")
    meta = read_meta(p)
    try:
        model = build_model(meta["architecture"], meta["config"])
    except ModelError as exc:
        raise ModelError(f"{p}: {exc}") from None
    try:
        state = load_file(str(p))
    except Exception as exc:
        raise ModelError(f"{p}: corrupt weight file ({exc})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    _load_checked(model, state, p)
    int8 = meta.get("int8")
    model.int8_calibration = int8 if isinstance(int8, dict) else None  # int8 ranges (deepdenoise.inference.quant)
    return model.eval(), meta


def _load_checked(model: Denoiser, state: dict[str, torch.Tensor], name: Path | str) -> None:
    """Load ``state`` into ``model``; one-line :class:`ModelError` for missing, extra, misshapen or
    non-finite tensors."""
    own = model.state_dict()
    missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or extra:
        what = (f"missing {', '.join(missing[:3])}" if missing else "") + ("; " if missing and extra else "") + (
            f"unexpected {', '.join(extra[:3])}" if extra else "")
        raise ModelError(f"{name}: weights do not match the architecture in the metadata ({what[:300]})")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ModelError(f"{name}: tensor {k} has shape {tuple(v.shape)}, the architecture needs "
                             f"{tuple(own[k].shape)}")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ModelError(f"{name}: tensor {k} holds NaN or infinite values")
    model.load_state_dict(state)


