"""Inference backends: the same weights run faster without changing the result beyond 0.02 dB.

- ``eager``: fp32 PyTorch, as trained (the reference for parity);
- ``folded`` (the default): batch norm folded into the preceding convolutions at load time, and
  channels_last memory format (fp32, same arithmetic up to summation order); on this 2-core CPU
  channels_last alone is 1.5x for DnCNN-S, 1.3x for ``default`` and 1.15x for ``fast``;
- ``bf16``: folded + channels_last + bfloat16 autocast, on CPUs with AVX-512 BF16/AMX (falls back
  to ``folded`` elsewhere, saying so);
- ``onnxruntime``: the folded network exported to ONNX and run by onnxruntime;
- ``int8``: U-Nets with an int8 calibration (``deepdenoise calibrate``): the coarse levels in int8,
  the finest in fp32, through onnxruntime (:mod:`deepdenoise.inference.quant`); about 2x ``onnxruntime``;
- ``auto`` (the default): ``int8`` for a model that ships an int8 calibration on a CPU with VNNI
  (AVX-512 VNNI or AVX-VNNI: without it onnxruntime's uint8 x int8 products can saturate and
  ``int8`` is also slower), else ``folded``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from deepdenoise.defaults import BACKENDS, DEFAULT_BACKEND  # noqa: F401  (re-exported)
from deepdenoise.hardware import cpu_has_bf16, cpu_has_vnni

if TYPE_CHECKING:  # torch loads lazily: the CLI imports the backend names before any work
    import torch

    from deepdenoise.models import Denoiser
    from deepdenoise.noise.level import NoiseLevel


def resolve_backend(model: Denoiser, backend: str) -> str:
    """``auto`` -> ``int8`` where the model and the CPU allow it, else ``folded``; others unchanged."""
    if backend != "auto":
        return backend
    if model.int8_calibration and cpu_has_vnni():
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is not None:
            return "int8"
    return "folded"


def make_forward(model: Denoiser, backend: str = "eager",
                 sigma: float | NoiseLevel | None = None) -> tuple[Callable[..., torch.Tensor], str]:
    """A forward function ``f(x, sigma=sigma)``, x: [1, C, H, W] -> [1, C, H, W], for ``backend``;
    returns (f, backend used). The prepared network does not depend on the level: ``sigma`` here is
    only the default of the call's, and a noise-level function becomes each tile's map."""
    import torch

    from deepdenoise.inference.levels import sigma_input
    from deepdenoise.models.folding import fold_batchnorm

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
        from deepdenoise.inference.onnx import onnx_forward

        return onnx_forward(model, sigma, int8=backend == "int8"), backend
    net = fold_batchnorm(model).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if backend == "bf16" and cpu_has_bf16():

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
