"""``deepdenoise export --format onnx``: the network as an ONNX graph with dynamic height/width.

Batch norm is folded first. ``int8=True`` exports the int8 network of :mod:`deepdenoise.inference.quant`
instead (QuantizeLinear/DequantizeLinear pairs; needs the model's int8 calibration). Noise-map
models take a second input, ``sigma`` [B, M, H, W]: the noise-level map (0-255 scale), at the
image's resolution. Padding to the network's size multiple (U-Net) stays outside the
graph, in the caller (:func:`onnx_forward`), so the graph has no shape arithmetic and any
height/width that is a multiple works.

The onnxruntime and int8 backends keep the exported graphs in a disk cache
(``$DEEPDENOISE_CACHE``, default ``~/.cache/deepdenoise``; ``off`` disables it): exporting costs
0.2-0.6 s, more than denoising a photo with the fast model, and a one-image CLI call would
otherwise pay it every time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from deepdenoise.errors import DeepDenoiseError
from deepdenoise.models import Denoiser
from deepdenoise.models.folding import fold_batchnorm
from deepdenoise.models.padding import pad_to_multiple

if TYPE_CHECKING:
    from deepdenoise.noise.level import NoiseLevel


class _Graph(nn.Module):
    """What goes into the ONNX file: the network core (no padding); sigma only for noise-map models."""

    def __init__(self, model: Denoiser) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.core(x, sigma)


def onnx_bytes(model: Denoiser, opset: int = 17, int8: bool = False) -> bytes:
    if int8:
        from deepdenoise.inference.quant import fake_quant_model

        net = _Graph(fake_quant_model(model, model.int8_calibration or {})).eval()
    else:
        net = _Graph(fold_batchnorm(model)).eval()
    channels = model.input_channels  # image (and a mask model's mask) channels
    mult = model.multiple
    dummy = torch.rand(1, channels, 16 * mult, 16 * mult)  # [1, C, H, W]
    args: tuple[torch.Tensor, ...] = (dummy,)
    names = ["noisy"]
    axes: dict[str, dict[int, str]] = {"noisy": {0: "batch", 2: "height", 3: "width"},
                                       "denoised": {0: "batch", 2: "height", 3: "width"}}
    if model.noise_input:
        maps = model.map_channels
        smap = torch.full((1, maps, dummy.shape[2], dummy.shape[3]), 25.0)  # [1, M, H, W]
        args, names = (dummy, smap), ["noisy", "sigma"]
        axes["sigma"] = {0: "batch", 2: "height", 3: "width"}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(net, args, buf,  # type: ignore[arg-type]
                          input_names=names, output_names=["denoised"], dynamic_axes=axes,
                          opset_version=opset, dynamo=False)
    return buf.getvalue()


def export_onnx(model: Denoiser, meta: dict[str, Any], path: str | Path, int8: bool = False) -> Path:
    from deepdenoise.fsutil import atomic_write_bytes, atomic_write_text

    p = Path(path)
    atomic_write_bytes(p, onnx_bytes(model, int8=int8))
    info = {"architecture": meta.get("architecture"), "config": meta.get("config"),
            "size_multiple": model.multiple, "input": "noisy [B, C, H, W] float32 in [0, 1]"
            + (", sigma [B, M, H, W] float32: the noise-level map, 0-255 scale" if model.noise_input else ""),
            "output": "denoised [B, C, H, W]", "source": meta.get("training", {}).get("command"),
            "precision": "int8 (coarse levels) + fp32 (finest level)" if int8 else "fp32"}
    atomic_write_text(p.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return p


CACHE_KEEP = 8  # graphs kept on disk (a shipped model's is 17 MB); the oldest go first


def cache_dir() -> Path | None:
    """Where exported graphs are kept between runs; None when ``DEEPDENOISE_CACHE`` is off."""
    value = os.environ.get("DEEPDENOISE_CACHE")
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "none") else Path(value)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deepdenoise"


def graph_key(model: Denoiser, int8: bool, opset: int = 17) -> str:
    """A digest of everything the exported graph depends on: weights, config, int8 ranges, the
    exporting code (this package's model, backend and export sources) and the torch version."""
    from dataclasses import asdict

    h = hashlib.sha256()
    head = {"class": type(model).__name__, "config": asdict(model.config),
            "int8": model.int8_calibration if int8 else None, "opset": opset,
            "torch": torch.__version__}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    src = Path(__file__).parents[1]
    code = [*src.glob("models/*.py"), *(src / "inference" / n for n in ("onnx.py", "quant.py", "backends.py"))]
    for f in sorted(code):
        h.update(f.read_bytes())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def cached_graph(model: Denoiser, int8: bool, refresh: bool = False) -> bytes:
    """The model's ONNX graph from the disk cache, exported (and stored) when missing or ``refresh``.

    The cache only saves time: an unwritable cache folder is skipped, never an error."""
    root = cache_dir()
    if root is None:
        return onnx_bytes(model, int8=int8)
    path = root / "onnx" / f"{graph_key(model, int8)}{'-int8' if int8 else ''}.onnx"
    if not refresh:
        try:
            graph = path.read_bytes()
            os.utime(path)  # recently used: kept longest
            return graph
        except OSError:
            pass
    graph = onnx_bytes(model, int8=int8)
    try:
        from deepdenoise.fsutil import atomic_write_bytes

        atomic_write_bytes(path, graph)
        for old in sorted(path.parent.glob("*.onnx"), key=lambda p: p.stat().st_mtime)[:-CACHE_KEEP]:
            old.unlink(missing_ok=True)
    except OSError:
        pass
    return graph


_SESSIONS: OrderedDict[str, Any] = OrderedDict()  # graph key -> onnxruntime session, least recent first
SESSIONS_KEEP = 4


def _session(model: Denoiser, ort: Any, int8: bool) -> Any:
    """One onnxruntime session per graph, keyed by its content (weights, config, int8 ranges), not
    by the module's ``id()``, which Python hands to the next module once this one is freed."""
    key = graph_key(model, int8) + ("-int8" if int8 else "")
    if key in _SESSIONS:
        _SESSIONS.move_to_end(key)
        return _SESSIONS[key]
    graph = cached_graph(model, int8)  # before evicting: a model without calibration fails here
    try:
        session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    except Exception:  # a damaged cache file (onnxruntime raises its own types): export afresh
        session = ort.InferenceSession(cached_graph(model, int8, refresh=True), providers=["CPUExecutionProvider"])
    _SESSIONS[key] = session
    while len(_SESSIONS) > SESSIONS_KEEP:
        _SESSIONS.popitem(last=False)
    return session


def onnx_forward(model: Denoiser, sigma: float | NoiseLevel | None = None,
                 int8: bool = False) -> Callable[..., torch.Tensor]:
    """``f(x, sigma=sigma)``, x: [1, C, H, W] -> [1, C, H, W], through onnxruntime on the CPU
    (noise-map models need a level: a number or a noise-level function, made into the map input)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DeepDenoiseError("the onnxruntime backend needs: pip install onnxruntime onnx") from None
    from deepdenoise.inference.levels import sigma_input

    session = _session(model, ort, int8)
    mult = model.multiple
    maps = model.map_channels
    default = sigma

    def run(x: torch.Tensor, sigma: float | NoiseLevel | None = default) -> torch.Tensor:
        if model.noise_input and sigma is None:
            raise DeepDenoiseError("this model needs a noise level: pass sigma (0-255 scale)")
        h, w = x.shape[2], x.shape[3]
        xp = pad_to_multiple(x, mult)  # [1, C, H', W']
        feed = {"noisy": xp.contiguous().numpy()}
        if model.noise_input:
            s = sigma_input(model, x, sigma)
            smap = s if isinstance(s, torch.Tensor) else torch.full((x.shape[0], maps, h, w), float(s or 0.0))
            feed["sigma"] = pad_to_multiple(smap.float(), mult).contiguous().numpy()  # [1, M, H', W']
        y = session.run(None, feed)[0]
        return torch.from_numpy(y)[:, :, :h, :w]

    return run
