"""The official DnCNN MatConvNet weights (HDF5 ``.mat``), loaded into our DnCNN for checking
our evaluation against the published one. The file is untrusted input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepdenoise.errors import ModelError
from deepdenoise.models import Denoiser, build_model
from deepdenoise.weights.format import FORMAT_VERSION, _load_checked

MAT_MAX_BYTES = 500_000_000  # largest dataset a .mat may ask us to read (the official ones: ~2 MB)


def load_matconvnet(path: str | Path) -> tuple[Denoiser, dict[str, Any]]:
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


