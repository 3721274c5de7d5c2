"""``deepdenoise export --format onnx``: the network as an ONNX graph with dynamic height/width.

Batch norm is folded first. Padding to the network's size multiple (U-Net) stays outside the
graph, in the caller (:func:`onnx_forward`), so the graph has no shape arithmetic and any
height/width that is a multiple works.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepdenoise.backends import fold_batchnorm
from deepdenoise.errors import DeepDenoiseError
from deepdenoise.models.padding import pad_to_multiple


class _Graph(nn.Module):
    """What goes into the ONNX file: the blind network core (no padding, no sigma)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        core = getattr(self.model, "core", None)
        return core(x) if core is not None else self.model(x)


def onnx_bytes(model: nn.Module, opset: int = 17) -> bytes:
    if not getattr(model, "blind", True):
        raise DeepDenoiseError("ONNX export supports blind models only")
    net = _Graph(fold_batchnorm(model)).eval()
    channels = int(model.config.channels)  # type: ignore[union-attr,arg-type]
    mult = int(getattr(model, "multiple", 1))
    dummy = torch.rand(1, channels, 16 * mult, 16 * mult)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(net, (dummy,), buf,  # type: ignore[arg-type]
                          input_names=["noisy"], output_names=["denoised"],
                          dynamic_axes={"noisy": {0: "batch", 2: "height", 3: "width"},
                                        "denoised": {0: "batch", 2: "height", 3: "width"}},
                          opset_version=opset, dynamo=False)
    return buf.getvalue()


def export_onnx(model: nn.Module, meta: dict[str, Any], path: str | Path) -> Path:
    from deepdenoise.hub import atomic_write_bytes, atomic_write_text

    p = Path(path)
    atomic_write_bytes(p, onnx_bytes(model))
    info = {"architecture": meta.get("architecture"), "config": meta.get("config"),
            "size_multiple": int(getattr(model, "multiple", 1)), "input": "noisy [B, C, H, W] float32 in [0, 1]",
            "output": "denoised [B, C, H, W]", "source": meta.get("training", {}).get("command")}
    atomic_write_text(p.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return p


def onnx_forward(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """x: [1, C, H, W] -> [1, C, H, W] through onnxruntime on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise DeepDenoiseError("the onnxruntime backend needs: pip install onnxruntime onnx") from None
    session = ort.InferenceSession(onnx_bytes(model), providers=["CPUExecutionProvider"])
    mult = int(getattr(model, "multiple", 1))

    def run(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        xp = pad_to_multiple(x, mult)  # [1, C, H', W']
        y = session.run(None, {"noisy": xp.contiguous().numpy()})[0]
        return torch.from_numpy(y)[:, :, :h, :w]

    return run
