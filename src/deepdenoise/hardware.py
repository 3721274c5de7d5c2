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


def pick_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else the CPU; a named device that is missing is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeepDenoiseError("CUDA was requested but no GPU is available")
    return torch.device(name)
