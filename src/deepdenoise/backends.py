"""Inference backends: the same weights run faster without changing the result beyond 0.02 dB.

- ``eager``: fp32 PyTorch, as trained (the reference for parity);
- ``folded`` (the default): batch norm folded into the preceding convolutions at load time, and
  channels_last memory format (fp32, same arithmetic up to summation order); on this 2-core CPU
  channels_last alone is 1.5x for DnCNN-S, 1.3x for ``default`` and 1.15x for ``fast``;
- ``bf16``: folded + channels_last + bfloat16 autocast, on CPUs with AVX-512 BF16/AMX (falls back
  to ``folded`` elsewhere, saying so);
- ``onnxruntime``: the folded network exported to ONNX and run by onnxruntime;
- ``int8``: U-Nets with an int8 calibration (``deepdenoise calibrate``): the coarse levels in int8,
  the finest in fp32, through onnxruntime (:mod:`deepdenoise.quant`); about 2x ``onnxruntime``;
- ``auto`` (the default): ``int8`` for a model that ships an int8 calibration on a CPU with VNNI
  (AVX-512 VNNI or AVX-VNNI: without it onnxruntime's uint8 x int8 products can saturate and
  ``int8`` is also slower), else ``folded``.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from deepdenoise.defaults import BACKENDS, DEFAULT_BACKEND  # noqa: F401  (re-exported)

if TYPE_CHECKING:  # torch loads lazily: the CLI imports the backend names before any work
    import torch
    from torch import nn

    from deepdenoise.noiselevel import NoiseLevel



def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` where every Conv2d -> BatchNorm2d pair is one Conv2d with bias (eval)."""
    import torch
    from torch import nn

    from deepdenoise.models.dncnn import DnCNN

    if not isinstance(model, DnCNN) or not model.config.batch_norm:
        return copy.deepcopy(model).eval()
    cfg = model.config
    folded = DnCNN(dataclasses.replace(cfg, batch_norm=False)).eval()
    src = list(model.body)
    convs_out = [m for m in folded.body if isinstance(m, nn.Conv2d)]
    k = 0
    with torch.no_grad():
        for i, m in enumerate(src):
            if not isinstance(m, nn.Conv2d):
                continue
            w = m.weight.clone()  # [O, I, k, k]
            b = m.bias.clone() if m.bias is not None else torch.zeros(m.out_channels)
            nxt = src[i + 1] if i + 1 < len(src) else None
            if isinstance(nxt, nn.BatchNorm2d):
                mean, var = nxt.running_mean, nxt.running_var
                assert mean is not None and var is not None
                scale = nxt.weight / torch.sqrt(var + nxt.eps)  # [O]
                w = w * scale[:, None, None, None]
                b = (b - mean) * scale + nxt.bias
            conv = convs_out[k]
            conv.weight.copy_(w)
            assert conv.bias is not None
            conv.bias.copy_(b)
            k += 1
    return folded


def cpu_bf16_available() -> bool:
    from deepdenoise.train import cpu_has_bf16

    return cpu_has_bf16()


def cpu_has_vnni() -> bool:
    """8-bit dot products (AVX-512 VNNI / AVX-VNNI / AMX-INT8): where int8 is exact and fast."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def resolve_backend(model: nn.Module, backend: str) -> str:
    """``auto`` -> ``int8`` where the model and the CPU allow it, else ``folded``; others unchanged."""
    if backend != "auto":
        return backend
    if getattr(model, "int8_calibration", None) and cpu_has_vnni():
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is not None:
            return "int8"
    return "folded"


def make_forward(model: nn.Module, backend: str = "eager",
                 sigma: float | NoiseLevel | None = None) -> tuple[Callable[..., torch.Tensor], str]:
    """A forward function ``f(x, sigma=sigma)``, x: [1, C, H, W] -> [1, C, H, W], for ``backend``;
    returns (f, backend used). The prepared network does not depend on the level: ``sigma`` here is
    only the default of the call's, and a noise-level function becomes each tile's map."""
    import torch

    from deepdenoise.noiselevel import sigma_input

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")
    backend = resolve_backend(model, backend)
    default = sigma
    if backend == "eager":
        net = model.eval()

        def eager(x: torch.Tensor, sigma: float | NoiseLevel | None = default) -> torch.Tensor:
            with torch.inference_mode():
                return net(x, sigma_input(net, x, sigma))

        return eager, "eager"
    if backend in ("onnxruntime", "int8"):
        from deepdenoise.export import onnx_forward

        return onnx_forward(model, sigma, int8=backend == "int8"), backend
    net = fold_batchnorm(model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if backend == "bf16" and cpu_bf16_available():

        def bf16(x: torch.Tensor, sigma: float | NoiseLevel | None = default) -> torch.Tensor:
            s = sigma_input(model, x, sigma)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                y = net(x.contiguous(memory_format=torch.channels_last), s)
            return y.float().contiguous()

        return bf16, "bf16"

    def folded_fn(x: torch.Tensor, sigma: float | NoiseLevel | None = default) -> torch.Tensor:
        s = sigma_input(model, x, sigma)
        with torch.inference_mode():
            return net(x.contiguous(memory_format=torch.channels_last), s).contiguous()

    return folded_fn, "folded"
