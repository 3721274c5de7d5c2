"""What this machine offers: the device to run on, and the CPU instructions that decide which
inference backend and training precision are fast (read from /proc/cpuinfo, no torch needed)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from deepdenoise.errors import DeepDenoiseError

if TYPE_CHECKING:
    import torch


@lru_cache(maxsize=1)
def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_bf16() -> bool:
    """AVX-512 BF16 / AMX: where bfloat16 autocast is fast on the CPU (about 4x fp32 training)."""
    flags = _cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_has_vnni() -> bool:
    """8-bit dot products (AVX-512 VNNI / AVX-VNNI / AMX-INT8): where int8 is exact and fast."""
    return any(f in _cpu_flags() for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def pick_device(name: str | None = "auto") -> torch.device:
    """``auto`` -> CUDA when present, then Apple's MPS, else the CPU; a named device that is not
    there is a one-line error (exit 2), never a silent fallback."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeepDenoiseError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeepDenoiseError(f"device '{name}' requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeepDenoiseError(f"device '{name}' requested but this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeepDenoiseError(f"device '{name}' requested but MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeepDenoiseError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)")
    return device


def gpu_tile(device: torch.device, channels: int, floor: int = 512) -> int:
    """A tile side for ``device`` from its free memory: about 1/8 of it for one tile's activations
    (the fast U-Nets need ~2 KB per pixel in fp16), at least ``floor``, at most 4096."""
    import torch

    if device.type != "cuda":
        return floor
    free, _ = torch.cuda.mem_get_info(device)
    side = int((free / 8 / (2048 * max(1, channels // 3 + 1))) ** 0.5)
    return max(floor, min(4096, side // 64 * 64))
