"""Weights on disk: safetensors tensors + JSON metadata, never pickle.

A weight file ``NAME.safetensors`` sits beside ``NAME.json``, which carries the architecture and
its config, the format version, and the training provenance (command, data, epochs, measured PSNR).
Shipped models live in the package's ``weights/`` folder and are loaded by registry name.
The official DnCNN MatConvNet ``.mat`` files (HDF5) load too, for checking our evaluation.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepdenoise.errors import ModelError
from deepdenoise.fsutil import publish_mode
from deepdenoise.models import build_model

FORMAT_VERSION = 1
WEIGHTS_DIR = Path(__file__).parent / "weights"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        publish_mode(tmp, path)
        os.replace(tmp, path)
    except BaseException:  # a full disk, a signal: no hidden temporary file left behind
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def model_meta(model: nn.Module) -> dict[str, Any]:
    from dataclasses import asdict

    from deepdenoise.models import ARCHITECTURES

    for arch, (cls, _) in ARCHITECTURES.items():
        if type(model) is cls:
            return {"architecture": arch, "config": asdict(model.config)}  # type: ignore[call-overload]
    raise ValueError(f"unregistered model class {type(model).__name__}")


def save_weights(
    model: nn.Module, path: str | Path, meta: dict[str, Any] | None = None, half: bool = False
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
    p = Path(path).with_suffix(".json")
    if not p.exists():
        raise ModelError(f"{p}: metadata file missing next to the weights")
    try:
        meta = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{p}: corrupt metadata ({exc})") from None
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(f"{p}: format version {meta['format_version']} is newer than this package")
    return meta


def load_weights(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model from PATH.safetensors + PATH.json (fp32, eval mode)."""
    from safetensors.torch import load_file

    p = Path(path).with_suffix(".safetensors")
    if not p.exists():
        raise ModelError(f"{p}: no such weight file")
    meta = read_meta(p)
    model = build_model(meta["architecture"], meta["config"])
    try:
        state = load_file(str(p))
    except Exception as exc:
        raise ModelError(f"{p}: corrupt weight file ({exc})") from None
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state)
    model.int8_calibration = meta.get("int8")  # type: ignore[assignment]  # int8 ranges (deepdenoise.quant)
    return model.eval(), meta


SHARED_REFERENCE = Path("../shared/reference-weights")


def reference_cache() -> Path:
    """Where ``deepdenoise download dncnn-reference`` puts the official DnCNN weights:
    ``$DEEPDENOISE_REFERENCE``, else ``~/.cache/deepdenoise/reference-weights``."""
    if os.environ.get("DEEPDENOISE_REFERENCE"):
        return Path(os.environ["DEEPDENOISE_REFERENCE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deepdenoise" / "reference-weights"


def reference_dir(explicit: str | Path | None = None) -> Path:
    """Where to look for the official DnCNN weights: ``explicit``, else the download location when it
    holds them, else a development checkout's ``../shared/reference-weights`` when that exists."""
    if explicit:
        return Path(explicit)
    cache = reference_cache()
    if (cache / "sigma=25.mat").exists() or not SHARED_REFERENCE.is_dir():
        return cache
    return SHARED_REFERENCE


def load_matconvnet(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load the official DnCNN MatConvNet weights (HDF5 .mat, BN folded) into our DnCNN."""
    import h5py
    import numpy as np

    try:
        f = h5py.File(str(path), "r")
    except OSError as exc:
        raise ModelError(f"{path}: not an HDF5 .mat file ({exc})") from None
    with f:
        layers = f["net/layers"]
        convs: list[tuple[np.ndarray, np.ndarray]] = []
        for i in range(layers.shape[0]):
            g = f[layers[i, 0]]
            kind = "".join(chr(c) for c in np.array(g["type"]).ravel())
            if kind != "conv":
                continue
            refs = np.array(g["weights"]).ravel()
            w = np.array(f[refs[0]], dtype=np.float32)  # (out, in, W, H) in HDF5 order
            b = np.array(f[refs[1]], dtype=np.float32).ravel()
            if w.ndim == 3:  # MATLAB drops the trailing singleton 'out' axis of the last conv
                w = w[None]
            convs.append((np.ascontiguousarray(np.swapaxes(w, 2, 3)), b))
    channels = convs[0][0].shape[1]
    cfg = {"depth": len(convs), "channels": channels, "features": convs[0][0].shape[0],
           "batch_norm": False, "kernel_size": 3}
    model = build_model("dncnn", cfg)
    conv_modules = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for m, (w, b) in zip(conv_modules, convs):
            m.weight.copy_(torch.from_numpy(w).reshape(m.weight.shape))
            assert m.bias is not None
            m.bias.copy_(torch.from_numpy(b))
    meta = {"format_version": FORMAT_VERSION, "architecture": "dncnn", "config": cfg,
            "source": f"official MatConvNet weights {Path(path).name}"}
    return model.eval(), meta


def shipped_models() -> dict[str, Path]:
    """Registry names of the weights that ship in the package."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}


def describe_models() -> list[dict[str, Any]]:
    """Metadata of every shipped model, with parameter count and FLOPs per pixel."""
    rows = []
    for name, path in shipped_models().items():
        meta = read_meta(path)
        model = build_model(meta["architecture"], meta["config"])
        tr = meta.get("training", {})
        rows.append({
            "name": name, "architecture": meta["architecture"], "preset_config": meta["config"],
            "parameters": sum(p.numel() for p in model.parameters()),
            "flops_per_pixel": int(model.flops_per_pixel()),  # type: ignore[operator]
            "steps": tr.get("total_steps", tr.get("steps")),
            "train_minutes": tr.get("total_train_seconds", tr.get("wall_seconds", 0)) / 60,
            "hardware": tr.get("hardware", "?"), "command": tr.get("command", "?"),
            "data": tr.get("data", "?"), "evaluation": meta.get("evaluation", {}),
            "int8": meta.get("int8", {}).get("command"),
            "noise_map": bool(meta["config"].get("noise_map", False)),
        })
    return rows


def record_evaluation(name: str, results: list[dict[str, Any]]) -> None:
    """Write measured PSNR (by dataset and sigma) into a shipped model's JSON metadata."""
    shipped = shipped_models()
    if name not in shipped:
        raise ModelError(f"--record needs a shipped model name, not '{name}'")
    path = shipped[name].with_suffix(".json")
    meta = json.loads(path.read_text())
    table = meta.setdefault("evaluation", {})
    for r in results:
        if r.get("noise") == "camera":  # simulated camera noise: its own table, keyed by the noise
            key = f"shot {r['shot']:g}, read {r['read']:g}" + (f", JPEG {r['jpeg']}" if r["jpeg"] else "")
            key += f", PD stride {r['pd_stride']}" if r["pd_stride"] > 1 else ""
            table.setdefault(f"{r['dataset']} camera noise", {})[key] = round(r["psnr_denoised"], 3)
        else:
            table.setdefault(r["dataset"], {})[f"{r['sigma']:g}"] = round(r["psnr_denoised"], 3)
    for ds in table:
        if all(_is_number(k) for k in table[ds]):
            table[ds] = dict(sorted(table[ds].items(), key=lambda kv: float(kv[0])))
    atomic_write_text(path, json.dumps(meta, indent=2) + "\n")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def level_label(key: str) -> str:
    """How an evaluation table's key reads: 'sigma 25' for a noise level, the key itself otherwise."""
    return f"sigma {key}" if _is_number(key) else key


def load_model(name_or_path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Resolve a shipped registry name, a .safetensors path, a run folder, or an official .mat."""
    s = str(name_or_path)
    shipped = shipped_models()
    if s in shipped:
        return load_weights(shipped[s])
    p = Path(s)
    if p.suffix == ".mat":
        if not p.exists():
            raise ModelError(f"{p}: no such file")
        return load_matconvnet(p)
    if p.is_dir() and (p / "best.safetensors").exists():
        return load_weights(p / "best.safetensors")
    if p.suffix in (".safetensors", ".json") or p.with_suffix(".safetensors").exists():
        return load_weights(p)
    known = ", ".join(shipped) or "none"
    raise ModelError(f"unknown model '{s}' (shipped: {known}; or give a .safetensors/.mat path)")
