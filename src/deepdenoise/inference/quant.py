"""int8 inference for the U-Nets: the coarse levels in int8, the finest level in fp32.

Why mixed precision: with every tensor in 8 bits the fast U-Nets lose 0.1-0.3 dB on BSD68 (the
noisy input and the finest level's residual stream need more than 256 steps), far past the
0.02 dB every backend must keep. With the finest level (head, its residual blocks, tail) in fp32
and everything below it in int8, the loss is under 0.01 dB, and onnxruntime runs the network
2.2x faster than in fp32 on this CPU (AVX-512 VNNI): the coarse levels hold most of the
convolutions, and deeper coarse levels are nearly free.

How: :func:`calibrate` runs noisy training crops through the model with observers at its
quantization points (the ``q_*`` identities of :mod:`deepdenoise.models.unet`) and keeps, per
point, the mean over batches of each batch's min and max (robust to a single outlier crop). The
ranges travel in the weights' JSON metadata (``"int8"``). :func:`fake_quant_model` is the model
with uint8 activations (per tensor, affine) and int8 weights (per output channel, symmetric) at
those points, in PyTorch: the eager definition of the int8 network. Exported to ONNX it becomes
QuantizeLinear/DequantizeLinear pairs that onnxruntime fuses into int8 convolutions
(``export.onnx_forward(..., int8=True)``, the ``int8`` backend).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from deepdenoise.errors import ModelError
from deepdenoise.models import Denoiser
from deepdenoise.models.unet import ResBlock, UNetDenoiser

INT8_FORMAT = 1


def _coarse_blocks(model: UNetDenoiser) -> Iterator[tuple[str, ResBlock]]:
    """Residual blocks below the finest level: enc[1:], mid, dec[:-1] (dec runs coarse to fine)."""
    groups = [(f"enc.{i}", s) for i, s in enumerate(model.enc) if i > 0] + [("mid", model.mid)]
    groups += [(f"dec.{j}", s) for j, s in enumerate(model.dec) if j < len(model.dec) - 1]
    for prefix, seq in groups:
        for k, blk in enumerate(seq.children()):
            assert isinstance(blk, ResBlock)
            yield f"{prefix}.{k}", blk


def quant_points(model: nn.Module) -> list[str]:
    """Names of the quantized activations (module paths of ``q_*`` identities), coarse levels only."""
    if not isinstance(model, UNetDenoiser):
        raise ModelError("int8 needs a U-Net model (unet_* presets); DnCNN runs in fp32")
    names = [f"{p}.{q}" for p, _ in _coarse_blocks(model) for q in ("q_hidden", "q_res", "q_out")]
    names += [f"q_down.{i}" for i in range(len(model.q_down))]
    names += [f"q_up.{j}" for j in range(len(model.q_up) - 1)]  # the last one feeds the finest level
    names += [f"q_skip.{j}" for j in range(len(model.q_skip) - 1)]
    return names


def _int8_convs(model: UNetDenoiser) -> list[str]:
    """Convolutions whose input is quantized: they get int8 weights (onnxruntime: QLinearConv)."""
    names = [f"{p}.{c}" for p, _ in _coarse_blocks(model) for c in ("conv1", "conv2")]
    names += [f"down.{i}" for i in range(1, len(model.down))] + [f"up.{j}" for j in range(len(model.up))]
    return names


def _replace(root: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, new)


class _Observer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lows: list[float] = []
        self.highs: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.lows.append(float(x.min()))
        self.highs.append(float(x.max()))
        return x


class ActFakeQuant(nn.Module):
    """uint8 affine, per tensor: the range [lo, hi] (widened to hold 0) in 255 steps."""

    def __init__(self, lo: float, hi: float) -> None:
        super().__init__()
        lo, hi = min(lo, 0.0), max(hi, 0.0)
        self.scale = max((hi - lo) / 255.0, 1e-8)
        self.zero_point = int(min(max(round(-lo / self.scale), 0), 255))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, 0, 255)


class WeightFakeQuantConv(nn.Module):
    """A (transposed) convolution whose weights are int8, symmetric per output channel."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d) -> None:
        super().__init__()
        self.conv = conv
        self.axis = 1 if isinstance(conv, nn.ConvTranspose2d) else 0  # the output-channel axis
        w = conv.weight.detach()
        amax = w.abs().amax(dim=[d for d in range(w.ndim) if d != self.axis]).clamp_min(1e-8)  # [O]
        self.w_scale: torch.Tensor
        self.w_zero: torch.Tensor
        self.register_buffer("w_scale", (amax / 127.0).float())  # [O]
        self.register_buffer("w_zero", torch.zeros_like(amax, dtype=torch.int32))  # [O]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        w = torch.fake_quantize_per_channel_affine(c.weight, self.w_scale, self.w_zero, self.axis, -128, 127)
        if isinstance(c, nn.ConvTranspose2d):
            return F.conv_transpose2d(x, w, c.bias, c.stride, c.padding)  # type: ignore[arg-type]
        return F.conv2d(x, w, c.bias, c.stride, c.padding)  # type: ignore[arg-type]


def calibrate(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
              source: str = "") -> dict[str, Any]:
    """Activation ranges at the quantization points, from (noisy [B, C, H, W], sigma [B] or None)
    batches whose size is a multiple of ``model.multiple``. Returns the ``"int8"`` metadata entry."""
    points = quant_points(model)
    net = copy.deepcopy(model).eval()
    observers = {p: _Observer() for p in points}
    for p, obs in observers.items():
        _replace(net, p, obs)
    n = 0
    with torch.inference_mode():
        for noisy, sigma in batches:
            net(noisy, sigma)
            n += 1
    if n == 0:
        raise ModelError("calibration needs at least one batch")
    ranges = {p: [sum(o.lows) / n, sum(o.highs) / n] for p, o in observers.items()}
    return {"format": INT8_FORMAT, "ranges": ranges, "batches": n, "data": source}


def fake_quant_model(model: Denoiser, calibration: dict[str, Any]) -> Denoiser:
    """The int8 network as PyTorch modules (eager, fp32 arithmetic on 8-bit values)."""
    if not calibration or calibration.get("format") != INT8_FORMAT:
        raise ModelError("this model has no int8 calibration: run 'deepdenoise calibrate' first")
    points = quant_points(model)
    ranges = calibration["ranges"]
    missing = [p for p in points if p not in ranges]
    if missing:
        raise ModelError(f"the int8 calibration does not match this model (missing {missing[0]})")
    net = copy.deepcopy(model).eval()
    assert isinstance(net, UNetDenoiser)
    for p in _int8_convs(net):
        conv = net.get_submodule(p)
        assert isinstance(conv, nn.Conv2d | nn.ConvTranspose2d)
        _replace(net, p, WeightFakeQuantConv(conv))
    for p in points:
        lo, hi = ranges[p]
        _replace(net, p, ActFakeQuant(float(lo), float(hi)))
    return net


def calibration_batches(folders: list[str], model: Denoiser, n_batches: int = 32, batch_size: int = 8,
                        patch: int = 128, sigma_max: float = 75.0, seed: int = 0
                        ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Noisy random crops of the training images, sigma uniform in [0, sigma_max] per crop."""
    from deepdenoise.data.sources import CropSource

    channels = model.in_channels
    mult = model.multiple
    patch = max(mult, patch // mult * mult)
    src = CropSource.from_folders(list(folders), channels == 3, patch, batch_size, seed)
    g = torch.Generator().manual_seed(seed)
    blind = not model.noise_input
    for step in range(n_batches):
        clean = src.batch(step).float() / 255.0  # [B, C, P, P] in [0, 1]
        sigma = torch.rand(clean.shape[0], generator=g) * sigma_max  # [B], 0-255 scale
        noisy = clean + torch.randn(clean.shape, generator=g) * (sigma / 255.0).view(-1, 1, 1, 1)
        yield noisy, (None if blind else sigma)


def calibrate_file(model_name: str, folders: list[str], out: str | Path, n_batches: int = 32,
                   sigma_max: float = 75.0, seed: int = 0) -> Path:
    """``deepdenoise calibrate``: the model's weights again at ``out``, with the int8 ranges in its JSON."""
    from deepdenoise.weights.format import save_weights
    from deepdenoise.weights.shipped import load_model

    model, meta = load_model(model_name)
    quant_points(model)  # a clear error for DnCNN before reading any image
    batches = calibration_batches(folders, model, n_batches, sigma_max=sigma_max, seed=seed)
    cal = calibrate(model, batches, source=f"{n_batches} x 8 noisy 128x128 crops (sigma 0-{sigma_max:g}) of "
                    + ", ".join(map(str, folders)) + f", seed {seed}")
    cal["command"] = (f"deepdenoise calibrate --model {model_name} --data {' '.join(map(str, folders))} "
                      f"--batches {n_batches} --sigma-max {sigma_max:g} --seed {seed}")
    keep = {k: v for k, v in meta.items() if k not in ("format_version", "architecture", "config", "dtype")}
    return save_weights(model, out, {**keep, "int8": cal}, half=meta.get("dtype") == "float16")
