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


def load_weights(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
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
    model.int8_calibration = meta.get("int8")  # type: ignore[assignment]  # int8 ranges (deepdenoise.quant)
    return model.eval(), meta


def _load_checked(model: nn.Module, state: dict[str, torch.Tensor], name: Path | str) -> None:
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


MAT_MAX_BYTES = 500_000_000  # largest dataset a .mat may ask us to read (the official ones: ~2 MB)


def load_matconvnet(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load the official DnCNN MatConvNet weights (HDF5 .mat, BN folded) into our DnCNN.

    The file is untrusted: HDF5 external links and external/virtual datasets (which can make the
    library open other files on this machine) are refused, every dataset's size is checked
    before it is read, and the layer shapes must chain into a DnCNN."""
    import h5py

    try:
        f = h5py.File(str(path), "r")
    except OSError as exc:
        raise ModelError(f"{path}: not an HDF5 .mat file ({_first_line(exc)})") from None
    try:
        with f:
            _refuse_links(f, path)
            convs = _mat_convs(f, path)
    except ModelError:
        raise
    except Exception as exc:  # a layout that is not MatConvNet's DnCNN
        raise ModelError(f"{path}: not a MatConvNet DnCNN ({_first_line(exc)})") from None
    cfg = _mat_config(convs, path)
    model = build_model("dncnn", cfg)
    conv_modules = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    state = {}
    for m_name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            w, b = convs[conv_modules.index(m)]
            state[f"{m_name}.weight"] = torch.from_numpy(w).reshape(m.weight.shape)
            state[f"{m_name}.bias"] = torch.from_numpy(b)
    _load_checked(model, state, path)
    meta = {"format_version": FORMAT_VERSION, "architecture": "dncnn", "config": cfg,
            "source": f"official MatConvNet weights {Path(path).name}"}
    return model.eval(), meta


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def _refuse_links(f: Any, path: str | Path) -> None:
    """Refuse external links, external-storage and virtual datasets anywhere in the file."""
    import h5py

    found: list[str] = []

    def visit(name: str, link: Any) -> None:
        if isinstance(link, h5py.ExternalLink):
            found.append(f"external link {name}")
        elif isinstance(link, h5py.HardLink):
            obj = f.get(name)
            if isinstance(obj, h5py.Dataset) and (obj.external or obj.is_virtual):
                found.append(f"external data {name}")

    f.visititems_links(visit)
    if found:
        raise ModelError(f"{path}: refused, the file points outside itself ({found[0]})")


def _mat_dataset(f: Any, ref: Any, path: str | Path) -> Any:
    import h5py
    import numpy as np

    obj = f[ref]
    if not isinstance(obj, h5py.Dataset):
        raise ModelError(f"{path}: a layer refers to a group where a dataset belongs")
    if obj.external or obj.is_virtual:
        raise ModelError(f"{path}: refused, a layer's data lives outside the file")
    size = int(np.prod(obj.shape, dtype=np.int64)) * obj.dtype.itemsize
    if size > MAT_MAX_BYTES:
        raise ModelError(f"{path}: a layer asks for {size} bytes (limit {MAT_MAX_BYTES})")
    return obj


def _mat_convs(f: Any, path: str | Path) -> list[tuple[Any, Any]]:
    import numpy as np

    layers = _mat_dataset(f, "net/layers", path)
    convs: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(min(layers.shape[0], 1000)):
        g = f[layers[i, 0]]
        kind = "".join(chr(int(c)) for c in np.array(_mat_dataset(f, g["type"].ref, path)).ravel()[:32])
        if kind != "conv":
            continue
        refs = np.array(_mat_dataset(f, g["weights"].ref, path)).ravel()
        if len(refs) < 2:
            raise ModelError(f"{path}: conv layer {i} lacks weights or bias")
        w = np.array(_mat_dataset(f, refs[0], path), dtype=np.float32)  # (out, in, W, H) in HDF5 order
        b = np.array(_mat_dataset(f, refs[1], path), dtype=np.float32).ravel()
        if w.ndim == 3:  # MATLAB drops the trailing singleton 'out' axis of the last conv
            w = w[None]
        if w.ndim != 4 or w.shape[2] != w.shape[3] or b.size != w.shape[0]:
            raise ModelError(f"{path}: conv layer {i} has weights {w.shape} and bias {b.shape}")
        convs.append((np.ascontiguousarray(np.swapaxes(w, 2, 3)), b))
    return convs


def _mat_config(convs: list[tuple[Any, Any]], path: str | Path) -> dict[str, Any]:
    """The DnCNN these layers make, checked to chain: each conv takes what the previous gives."""
    if len(convs) < 2:
        raise ModelError(f"{path}: {len(convs)} conv layers; a DnCNN has at least 2")
    channels, features = convs[0][0].shape[1], convs[0][0].shape[0]
    for i, (w, _) in enumerate(convs):
        want_in = channels if i == 0 else features
        want_out = channels if i == len(convs) - 1 else features
        if w.shape[:2] != (want_out, want_in) or w.shape[2] != 3:
            raise ModelError(f"{path}: conv layer {i} has shape {w.shape}, a DnCNN needs "
                             f"({want_out}, {want_in}, 3, 3)")
    return {"depth": len(convs), "channels": channels, "features": features, "batch_norm": False, "kernel_size": 3}


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
