"""Inference backends: the same weights run faster without changing the result beyond 0.02 dB.

- ``eager``: fp32 PyTorch, as trained (the reference for parity);
- ``folded`` (the default): batch norm folded into the preceding convolutions at load time, and
  channels_last memory format (fp32, same arithmetic up to summation order); on this 2-core CPU
  channels_last alone is 1.5x for DnCNN-S, 1.3x for ``default`` and 1.15x for ``fast``;
- ``bf16``: folded + channels_last + bfloat16 autocast, on CPUs with AVX-512 BF16/AMX (falls back
  to ``folded`` elsewhere, saying so) and on GPUs;
- ``fp16``: folded + channels_last + float16 autocast, on GPUs (``auto`` there);
- ``onnxruntime``: the folded network exported to ONNX and run by onnxruntime;
- ``int8``: U-Nets with an int8 calibration (``deepdenoise calibrate``): the coarse levels in int8,
  the finest in fp32, through onnxruntime (:mod:`deepdenoise.inference.quant`); about 2x ``onnxruntime``;
- ``auto`` (the default): ``int8`` for a model that ships an int8 calibration on a CPU with VNNI
  (AVX-512 VNNI or AVX-VNNI: without it onnxruntime's uint8 x int8 products can saturate and
  ``int8`` is also slower), else ``folded``.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from deepdenoise.defaults import BACKENDS, DEFAULT_BACKEND  # noqa: F401  (re-exported)
from deepdenoise.errors import DeepDenoiseError
from deepdenoise.hardware import cpu_has_bf16, cpu_has_vnni

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # torch loads lazily: the CLI imports the backend names before any work
    import torch

    from deepdenoise.models import Denoiser
    from deepdenoise.noise.level import NoiseLevel


def check_backend(backend: str, device_type: str) -> None:
    """One-line error for a backend this kind of device cannot run."""
    if backend not in BACKENDS:
        raise DeepDenoiseError(f"unknown backend '{backend}' (choose from {', '.join(BACKENDS)})")
    if device_type != "cpu" and backend in ("onnxruntime", "int8"):
        raise DeepDenoiseError(f"the {backend} backend runs on the CPU: use --device cpu, or --backend "
                               "fp16 or folded on the GPU")
    if device_type == "cpu" and backend == "fp16":
        raise DeepDenoiseError("the fp16 backend is for GPUs: on the CPU use bf16 (AVX-512 BF16), folded or int8")


def resolve_backend(model: Denoiser, backend: str, device_type: str = "cpu") -> str:
    """``auto`` -> ``int8`` where the model and the CPU allow it, else ``folded``; on a GPU ``auto``
    is ``fp16``. A backend the device cannot run is a one-line error."""
    check_backend(backend, device_type)
    if device_type != "cpu":
        return ("fp16" if device_type == "cuda" else "folded") if backend == "auto" else backend
    if backend != "auto":
        return backend
    if model.int8_calibration and cpu_has_vnni():
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is not None:
            return "int8"
    return "folded"


def make_forward(model: Denoiser, backend: str = "eager", sigma: float | NoiseLevel | None = None,
                 device: torch.device | None = None) -> tuple[Callable[..., torch.Tensor], str]:
    """A forward function ``f(x, sigma=sigma)``, x: [1, C, H, W] -> [1, C, H, W] on the CPU, for
    ``backend`` on ``device``; returns (f, backend used). Tiles go to the device and come back: the
    image buffers stay in host memory. The prepared network does not depend on the level: ``sigma``
    here is only the default of the call's, and a noise-level function becomes each tile's map."""
    import torch

    device = device or torch.device("cpu")
    backend = resolve_backend(model, backend, device.type)
    if backend in ("onnxruntime", "int8"):
        from deepdenoise.inference.onnx import onnx_forward

        return onnx_forward(model, sigma, int8=backend == "int8"), backend
    if backend == "eager" and device.type == "cpu":
        return _device_forward(model.eval(), model, device, None, False, sigma), "eager"
    if backend == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        log.info("bf16 needs AVX-512 BF16 or AMX: running folded fp32")
        backend = "folded"
    from deepdenoise.models.folding import fold_batchnorm

    net = copy.deepcopy(model) if backend == "eager" else fold_batchnorm(model)
    net = net.to(device).eval()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(backend)
    return _device_forward(net, model, device, dtype, backend != "eager", sigma), backend


def _device_forward(net: Denoiser, model: Denoiser, device: torch.device, dtype: torch.dtype | None,
                    channels_last: bool, default: float | NoiseLevel | None) -> Callable[..., torch.Tensor]:
    import torch

    from deepdenoise.inference.levels import sigma_input

    if channels_last:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def run(x: torch.Tensor, sigma: float | NoiseLevel | None = default) -> torch.Tensor:
        s = sigma_input(model, x, sigma)  # [1, M, H, W] map, a number, or None
        if isinstance(s, torch.Tensor):
            s = s.to(device, non_blocking=True)
        xd = x.to(device, non_blocking=True).contiguous(memory_format=fmt)  # [1, C, H, W]
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                    enabled=dtype is not None):
            y = net(xd, s)
        return y.float().to("cpu").contiguous()

    return run
