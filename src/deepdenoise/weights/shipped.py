"""The models that ship in the package (this folder's ``NAME.safetensors`` + ``NAME.json``), found
by registry name, and where the official DnCNN reference weights are looked for.

``MANIFEST.json`` lists every shipped file's sha256 with its provenance (the training command, data,
steps and measured PSNR); a shipped model whose files do not match it is refused, so a damaged or
swapped weight file never runs under a trusted name."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from deepdenoise.errors import ModelError
from deepdenoise.models import Denoiser, build_model
from deepdenoise.weights.format import load_weights, read_meta
from deepdenoise.weights.matconvnet import load_matconvnet

WEIGHTS_DIR = Path(__file__).parent
MANIFEST = "MANIFEST.json"


def shipped_models() -> dict[str, Path]:
    """Registry names of the weights that ship in the package."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}


def white_noise_models() -> list[str]:
    """The shipped models that denoise an image on its own (not those that need a mask beside it)."""
    return [n for n, p in shipped_models().items() if not read_meta(p)["config"].get("mask_input")]


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
            "flops_per_pixel": int(model.flops_per_pixel()),
            "steps": tr.get("total_steps", tr.get("steps")),
            "train_minutes": tr.get("total_train_seconds", tr.get("wall_seconds", 0)) / 60,
            "hardware": tr.get("hardware", "?"), "command": tr.get("command", "?"),
            "data": tr.get("data", "?"), "evaluation": meta.get("evaluation", {}),
            "int8": meta.get("int8", {}).get("command"),
            "noise_map": bool(meta["config"].get("noise_map", False)),
        })
    return rows


def is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def level_label(key: str) -> str:
    """How an evaluation table's key reads: 'sigma 25' for a noise level, the key itself otherwise."""
    return f"sigma {key}" if is_number(key) else key


def load_model(name_or_path: str | Path) -> tuple[Denoiser, dict[str, Any]]:
    """Resolve a shipped registry name, a .safetensors path, a run folder, or an official .mat."""
    s = str(name_or_path)
    shipped = shipped_models()
    if s in shipped:
        verify_shipped(s, shipped[s])
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
def reference_cache() -> Path:
    """Where ``deepdenoise download dncnn-reference`` puts the official DnCNN weights:
    ``$DEEPDENOISE_REFERENCE``, else ``~/.cache/deepdenoise/reference-weights``."""
    if os.environ.get("DEEPDENOISE_REFERENCE"):
        return Path(os.environ["DEEPDENOISE_REFERENCE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deepdenoise" / "reference-weights"


def reference_dir(explicit: str | Path | None = None) -> Path:
    """Where to look for the official DnCNN weights: ``explicit``, else the download location
    (``$DEEPDENOISE_REFERENCE`` or the user's cache)."""
    return Path(explicit) if explicit else reference_cache()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(folder: Path | None = None) -> dict[str, Any]:
    path = (folder or WEIGHTS_DIR) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable manifest of the shipped models ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), dict):
        raise ModelError(f"{path}: the manifest lists no models")
    return manifest


def verify_shipped(name: str, weights: Path) -> None:
    """Refuse a shipped model whose weight or metadata file differs from its manifest entry."""
    entry = read_manifest(weights.parent)["models"].get(name)
    if not isinstance(entry, dict):
        raise ModelError(f"shipped model '{name}' is not in {MANIFEST}")
    for path, key in ((weights, "sha256"), (weights.with_suffix(".json"), "json_sha256")):
        if file_sha256(path) != entry.get(key):
            raise ModelError(f"{path.name}: does not match its {MANIFEST} checksum (a damaged or replaced file); "
                             "reinstall the package")


def manifest_entry(weights: Path) -> dict[str, Any]:
    """A shipped file's checksums and provenance, as the manifest records them."""
    meta = read_meta(weights)
    tr = meta.get("training", {})
    return {"sha256": file_sha256(weights), "json_sha256": file_sha256(weights.with_suffix(".json")),
            "architecture": meta["architecture"], "command": tr.get("command"), "data": tr.get("data"),
            "steps": tr.get("total_steps", tr.get("steps")), "evaluation": meta.get("evaluation", {})}
