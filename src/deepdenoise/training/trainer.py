"""Training: the DnCNN-S recipe by default (Adam 1e-3, lr x0.95 per epoch, MSE, 30 epochs,
sigma 25) and the blind recipes of ``configs/``.

Speed: bfloat16 autocast + channels_last on CPUs with AVX-512 BF16 (about 4x fp32 here) and on
CUDA (same code, AMP). Robustness: checkpoints at every epoch end and at least every
``checkpoint_minutes``, written atomically; ``resume`` continues bit-for-bit from the last one.
Distributed: under ``torchrun`` each rank trains on its shard of every global batch (DDP).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deepdenoise.data.sources import CropSource, PatchSource, step_generator
from deepdenoise.errors import DeepDenoiseError
from deepdenoise.fsutil import atomic_write_text
from deepdenoise.hardware import cpu_has_bf16, pick_device
from deepdenoise.metrics import batch_psnr
from deepdenoise.models import Denoiser, create_model
from deepdenoise.noise import add_gaussian_noise, haar_sigma, local_std, random_noise_maps
from deepdenoise.training.checkpoint import (
    RunLock,
    clean_stale_temporaries,
    has_checkpoint,
    load_checkpoint,
    save_checkpoint,
    truncate_log,
)
from deepdenoise.training.config import TrainConfig
from deepdenoise.training.distributed import DistInfo, any_rank, finish_distributed, init_distributed
from deepdenoise.weights.format import save_weights

log = logging.getLogger(__name__)
LOG_FIELDS = ["epoch", "step", "loss", "val_psnr_noisy", "val_psnr", "lr", "epoch_seconds",
              "elapsed_seconds", "patches_per_s"]


def lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int, elapsed_s: float = 0.0) -> float:
    """Learning rate at ``step``. Cosine follows the larger of step and time progress, so a run
    with a ``max_minutes`` budget still anneals to ``lr_min`` by the end of its budget."""
    if cfg.lr_schedule == "cosine":
        progress = step / (cfg.epochs * steps_per_epoch)
        if cfg.max_minutes:
            progress = max(progress, elapsed_s / (cfg.max_minutes * 60))
        progress = min(progress, 1.0)
        return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))
    return cfg.lr * cfg.lr_decay ** (step // steps_per_epoch)


def adapt_state(src: dict[str, torch.Tensor], dst: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """``src`` weights fitted to a model whose state is ``dst``; returns (state, tensors kept from dst).

    - a conv that gained input channels (a blind model grown a noise-map input) keeps its trained
      weights on the old channels and gets zeros on the new ones, so it starts out computing what
      the trained network did;
    - tensors the new model lacks (residual blocks it dropped) are left out: a residual network
      without some of its blocks stays a good starting point (Veit et al. 2016);
    - a residual block only the new model has (a deeper level) starts as the identity: its last
      conv is zeroed, so the grown network computes what the trained one did and learns from there;
    - other tensors only the new model has keep their fresh initialisation.
    """
    out: dict[str, torch.Tensor] = {}
    for k, t in dst.items():
        w = src.get(k)
        if w is None:
            out[k] = torch.zeros_like(t) if k.endswith(".conv2.weight") else t
        elif w.shape == t.shape:
            out[k] = w
        elif (w.ndim == 4 and t.ndim == 4 and w.shape[0] == t.shape[0] and w.shape[2:] == t.shape[2:]
              and w.shape[1] < t.shape[1]):
            wide = torch.zeros_like(t, dtype=w.dtype)  # [O, I_new, k, k]
            wide[:, : w.shape[1]] = w
            out[k] = wide
        else:
            raise DeepDenoiseError(f"init_from: '{k}' has shape {tuple(w.shape)}, the model needs {tuple(t.shape)}")
    return out, sum(1 for k in dst if k not in src)


def make_source(cfg: TrainConfig) -> PatchSource | CropSource:
    if cfg.data_mode == "patches":
        name = "train_color.npy" if cfg.color else "train.npy"  # written by prepare --color
        return PatchSource.from_file(Path(cfg.data) / name, cfg.batch_size, cfg.seed)
    if cfg.data_mode == "images":
        dirs = cfg.image_dirs or [cfg.data]
        return CropSource.from_folders(list(dirs), cfg.color, cfg.patch_size, cfg.batch_size,
                                       cfg.seed, cfg.steps_per_epoch or 1000)
    raise DeepDenoiseError(f"unknown data_mode '{cfg.data_mode}' (patches or images)")


class Validator:
    """PSNR on the test patches with noise from a fixed seed (same noise every epoch)."""

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.clean: torch.Tensor | None = None
        self.maps: torch.Tensor | None = None
        default = 25.0 if cfg.sigma_max else cfg.sigma
        self.sigma: float | None = cfg.val_sigma if cfg.val_sigma is not None else default
        self.psnr_noisy = float("nan")

    def load(self) -> Validator:
        """Read the validation patches and make their noise (the constructor reads nothing)."""
        cfg = self.cfg
        path = Path(cfg.val) if cfg.val else Path(cfg.data) / ("test_color.npy" if cfg.color else "test.npy")
        if not path.exists():
            log.warning("no validation patches at %s; validation PSNR skipped", path)
            return self
        arr = np.load(path, allow_pickle=False)
        if cfg.val_limit:
            arr = arr[: cfg.val_limit]
        arr = arr[:, None] if arr.ndim == 3 else np.moveaxis(arr, -1, 1)
        self.clean = torch.from_numpy(np.ascontiguousarray(arr)).float() / 255.0  # [N, C, P, P]
        self.noisy = add_gaussian_noise(self.clean, self.sigma or 0.0, seed=12345)  # [N, C, P, P]
        if cfg.noise == "impulse":  # the same corruptions every epoch
            from deepdenoise.noise.impulse import impulse_training_batch

            g = torch.Generator().manual_seed(12345)
            self.clean, self.noisy = impulse_training_batch(self.clean, g, len(self.clean), lambda t: t)
            self.sigma = None
        if cfg.noise == "camera":  # shot 0.04, read 0.01: the middle row of docs/real-noise.md
            from deepdenoise.noise.camera import CameraNoise, simulate_camera

            self.noisy, self.clean = simulate_camera(self.clean, CameraNoise(0.04, 0.01), seed=12345)
            self.maps = local_std(self.noisy - self.clean)  # [N, C, P, P]: what a noise-map model is given
        self.psnr_noisy = float(batch_psnr(self.noisy[:, : self.clean.shape[1]], self.clean).mean())
        return self

    @property
    def available(self) -> bool:
        return self.clean is not None

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, amp: bool) -> float | None:
        if self.clean is None:
            return None
        model.eval()
        scores = []
        for i in range(0, len(self.clean), 1024):
            y = self.noisy[i:i + 1024].to(self.device).contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
                out = model(y, self.sigma if self.maps is None else self.maps[i:i + 1024].to(self.device))
            scores.append(batch_psnr(out.float(), self.clean[i:i + 1024].to(self.device)).cpu())
        model.train()
        return float(torch.cat(scores).mean())


def noisy_batch(source: PatchSource | CropSource, cfg: TrainConfig, step: int, dist_info: DistInfo,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | float]:
    """(clean, noisy, sigma) for this rank at ``step``: a pure function of (seed, step).

    The global batch's noise is drawn whole and then sharded, so any world size sees the same data.
    Blind recipes draw sigma per patch, uniform in [sigma, sigma_max]; sigma is returned per patch
    [B], or as a per-pixel map [B, C, P, P] with ``noise_maps: varying`` and for camera noise.
    """
    clean = source.batch(step, dist_info.rank, dist_info.world).to(device).float().div_(255.0)  # [b, C, P, P]
    g = step_generator(cfg.seed, step, 3)

    def shard(t: torch.Tensor) -> torch.Tensor:
        return t.chunk(dist_info.world)[dist_info.rank]

    if cfg.noise == "impulse":  # the input is the filled image and the detector's mask
        from deepdenoise.noise.impulse import impulse_training_batch

        clean, noisy = impulse_training_batch(clean, g, cfg.batch_size, shard)
        return clean, noisy.contiguous(memory_format=torch.channels_last), None  # type: ignore[return-value]
    if cfg.noise == "camera":  # the target is the noise-free pipeline's image
        from deepdenoise.noise.camera import camera_training_batch

        ref, noisy, sig = camera_training_batch(clean, g, cfg.batch_size, shard, cfg.camera_shot_max,
                                                cfg.camera_read_max, cfg.camera_jpeg, cfg.camera_isp,
                                                cfg.camera_profile)
        if cfg.camera_mix > 0:  # some patches keep plain Gaussian noise (varying maps)
            pick = shard(torch.rand(cfg.batch_size, generator=g) < cfg.camera_mix).to(device).reshape(-1, 1, 1, 1)
            _, g_noisy, g_map = _gaussian_batch(clean, cfg, g, shard, device, varying=True)
            ref, noisy, sig = (torch.where(pick, clean, ref), torch.where(pick, g_noisy, noisy),
                               torch.where(pick, g_map, sig))
        clean, noisy = ref, noisy.contiguous(memory_format=torch.channels_last)
        sigma: torch.Tensor | float = sig
    else:
        target, noisy, sigma = _gaussian_batch(clean, cfg, g, shard, device, varying=cfg.noise_maps == "varying")
        if cfg.map_over > 0:
            sigma = _over_levels(clean, target, sigma, cfg, g, shard)
        if cfg.map_estimated > 0:
            sigma = _estimated_levels(clean, target, noisy, sigma, cfg, g, shard)
        clean = target
    if cfg.map_jitter > 0:  # the level a photo's estimate gives is off by some percent: learn to cope
        off = shard(torch.exp(cfg.map_jitter * torch.randn(cfg.batch_size, generator=g))).to(device)  # [b]
        s = torch.as_tensor(sigma, dtype=torch.float32, device=device)
        sigma = s * (off if s.ndim == 1 else off.reshape(-1, 1, 1, 1)) if s.ndim else s * off
    return clean, noisy, sigma


def _estimated_levels(clean: torch.Tensor, target: torch.Tensor, noisy: torch.Tensor, sigma: torch.Tensor | float,
                      cfg: TrainConfig, g: torch.Generator, shard: Callable[[torch.Tensor], torch.Tensor],
                      ) -> torch.Tensor:
    """A ``map_estimated`` fraction of the patches that aim at the clean image are told the level
    estimated from their noisy pixels (per channel) instead of the true one: what blind use gives
    a noise-map model, estimate errors included, so that it learns to do there what a blind model
    does. Returns the maps [b, C, P, P]."""
    b, c, p, _ = noisy.shape
    s = torch.as_tensor(sigma, dtype=torch.float32, device=noisy.device)
    maps = s.reshape(-1, 1, 1, 1).expand(b, c, p, p) if s.ndim < 4 else s.expand(b, c, p, p)  # [b, C, P, P]
    pick = shard(torch.rand(cfg.batch_size, generator=g) < cfg.map_estimated).to(noisy.device)  # [b]
    whole = (target - clean).flatten(1).abs().amax(dim=1) == 0  # [b]: no part of the noise kept
    est = haar_sigma(noisy).reshape(b, c, 1, 1).expand(b, c, p, p)  # [b, C, P, P]
    return torch.where((pick & whole).reshape(-1, 1, 1, 1), est, maps).contiguous()


def _over_levels(clean: torch.Tensor, target: torch.Tensor, sigma: torch.Tensor | float, cfg: TrainConfig,
                 g: torch.Generator, shard: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """A ``map_over`` fraction of the patches that aim at the clean image are told 1-2 times their
    level. A user who pushes the level above the estimate wants a smoother picture; a model that
    was never told more than its noise learns nothing for that and stops responding there.
    Returns the levels [b, 1 or C, 1 or P, 1 or P]."""
    b = target.shape[0]
    s = torch.as_tensor(sigma, dtype=torch.float32, device=target.device)
    s = s if s.ndim == 4 else s.reshape(-1, 1, 1, 1)  # [b or 1, 1 or C, 1 or P, 1 or P]
    pick = shard(torch.rand(cfg.batch_size, generator=g) < cfg.map_over).to(target.device)  # [b]
    u = shard(1.0 + torch.rand(cfg.batch_size, generator=g)).to(target.device)  # [b] in [1, 2)
    whole = (target - clean).flatten(1).abs().amax(dim=1) == 0  # [b]: aims at the clean image
    factor = torch.where(pick & whole, u, torch.ones_like(u)).reshape(b, 1, 1, 1)  # [b, 1, 1, 1]
    return (s * factor).contiguous()


def _gaussian_batch(clean: torch.Tensor, cfg: TrainConfig, g: torch.Generator,
                    shard: Callable[[torch.Tensor], torch.Tensor], device: torch.device,
                    varying: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | float]:
    """(target, noisy, sigma) with Gaussian noise on ``clean`` [b, C, P, P]: one sigma, one per
    patch, or a varying map per patch; with ``map_partial`` some patches are told a lower level."""
    sigma: torch.Tensor | float = cfg.sigma
    if varying:
        sigma = random_noise_maps(clean, g, cfg.sigma, cfg.sigma_max or cfg.sigma, cfg.batch_size, shard)
    elif cfg.sigma_max is not None:
        sig_all = cfg.sigma + (cfg.sigma_max - cfg.sigma) * torch.rand(cfg.batch_size, generator=g)  # [B]
        sigma = shard(sig_all).to(device)  # [b]
    noise = shard(torch.randn((cfg.batch_size, *clean.shape[1:]), generator=g)).to(device)  # [b, C, P, P]
    s = torch.as_tensor(sigma, device=device, dtype=torch.float32)
    s = s if s.ndim == 4 else s.reshape(-1, 1, 1, 1)  # [b, C, P, P] or [b, 1, 1, 1]
    if cfg.map_partial > 0:
        return _partial(clean, noise, s, cfg.map_partial, cfg.batch_size, g, shard)
    noisy = (clean + noise * s / 255.0).contiguous(memory_format=torch.channels_last)
    return clean, noisy, sigma


def _partial(clean: torch.Tensor, noise: torch.Tensor, s: torch.Tensor, fraction: float, batch: int,
             g: torch.Generator, shard: Callable[[torch.Tensor], torch.Tensor],
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The level a user gives means how much noise to remove. A ``fraction`` of the patches are told
    a level t = u * s below their noise s (u uniform in [0.2, 1]): their noise is the sum of a part
    of std t and an independent rest of std sqrt(s^2 - t^2), and the target keeps the rest. The
    other patches are told s and aim at the clean image. A model that must tell these apart from
    the same noisy input follows its map (fine-tuned from a blind model, it would otherwise keep
    estimating the level itself and ignore the map)."""
    b = clean.shape[0]
    pick = shard(torch.rand(batch, generator=g) < fraction).to(clean.device).reshape(-1, 1, 1, 1)
    u = shard(0.2 + 0.8 * torch.rand(batch, generator=g)).to(clean.device).reshape(-1, 1, 1, 1)
    rest = shard(torch.randn((batch, *clean.shape[1:]), generator=g)).to(clean.device)  # [b, C, P, P]
    told = torch.where(pick, s * u, s).expand(b, *s.shape[1:])  # [b, 1 or C, 1 or P, 1 or P]
    left = (s ** 2 - told ** 2).clamp_min(0).sqrt()
    kept = rest * left / 255.0  # [b, C, P, P]: zero where the whole level was told
    noisy = (clean + noise * told / 255.0 + kept).contiguous(memory_format=torch.channels_last)
    return clean + kept, noisy, told.expand(b, clean.shape[1], *clean.shape[2:]).contiguous()


@torch.no_grad()
def recalibrate_bn(model: torch.nn.Module, source: PatchSource | CropSource, cfg: TrainConfig,
                   device: torch.device, amp: bool) -> None:
    """Precise BN: replace the running batch-norm statistics by their average over many batches.

    Running averages track the weights as they move during training; re-estimating them at the
    end with the final weights removes that lag (Wu & Johnson, "Rethinking batch in BatchNorm").
    Batches are drawn from steps past the end of training, so the data is fresh but reproducible.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    start = cfg.epochs * (cfg.steps_per_epoch or source.steps_per_epoch)
    for k in range(cfg.precise_bn_batches):
        _, noisy, sigma = noisy_batch(source, cfg, start + k, DistInfo(), device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            model(noisy, sigma)
    for m, mom in zip(bns, saved):
        m.momentum = mom


class StopOnSignal:
    """Ctrl-C or SIGTERM (a logout, a scheduler, ``kill``) while training: finish the step, write a
    checkpoint and return, so ``--resume`` loses nothing. A second signal stops at once."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self) -> StopOnSignal:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():  # handlers only install there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)


def append_log(log_path: Path, row: dict[str, Any]) -> None:
    with open(log_path, "a", newline="") as f:
        csv.DictWriter(f, LOG_FIELDS).writerow(row)


def training_meta(cfg: TrainConfig, command: str | None, epochs: float, state: TrainState, hardware: str,
                  val: float | None, val_sigma: float | None) -> dict[str, Any]:
    """What the best weights record about how they were made: command, data, steps, measured PSNR."""
    return {"training": {"command": command, "config": cfg.to_dict(), "steps": state.step,
                         "epochs": round(epochs, 3), "wall_seconds": round(state.elapsed_seconds),
                         "hardware": hardware, "val_psnr": val, "val_sigma": val_sigma}}


@dataclass
class TrainState:
    """What a checkpoint carries besides the tensors; everything a resumed run continues from."""

    step: int = 0
    best_score: float = -math.inf  # the best weights' validation PSNR, or minus their loss without validation
    precise_bn_step: int = -1
    elapsed_seconds: float = 0.0  # step time only: the budget (max_minutes) and the cosine schedule use it
    epoch_loss: float = 0.0
    epoch_count: int = 0
    epoch_seconds: float = 0.0

    @classmethod
    def from_checkpoint(cls, info: dict[str, Any]) -> TrainState:
        """From a checkpoint's JSON (older checkpoints name the best score ``best_psnr``)."""
        values = {f.name: info[f.name] for f in fields(cls) if f.name in info}
        if "best_score" not in values and "best_psnr" in info:
            values["best_score"] = float(info["best_psnr"])
        return cls(**values)


def log_row(epoch: float, step: int, lr: float | str, state: TrainState, val: float | None, val_noisy: float | None,
            loss: float | None = None, patches_per_s: float | None = None) -> dict[str, str]:
    """One line of ``log.csv`` (an epoch's end, or the precise-BN pass)."""
    def num(v: float | None, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    return {"epoch": f"{epoch:.3f}", "step": str(step), "loss": num(loss, ".6g"),
            "val_psnr_noisy": num(val_noisy, ".4f"), "val_psnr": num(val, ".4f"),
            "lr": lr if isinstance(lr, str) else f"{lr:.3e}",
            "epoch_seconds": "" if loss is None else f"{state.epoch_seconds:.1f}",
            "elapsed_seconds": f"{state.elapsed_seconds:.1f}", "patches_per_s": num(patches_per_s, ".1f")}


class Trainer:
    """One training run (new or resumed) of ``cfg`` into ``cfg.out``.

    The constructor only records its arguments; :meth:`run` sets up the device, data, model and
    optimizer, restores a checkpoint, trains until the steps or the time budget run out (or a
    signal asks it to stop), and writes the summary. Every epoch ends with validation, a log row,
    the best weights when they improved, and a checkpoint; checkpoints also come every
    ``checkpoint_minutes`` and on a signal, so a stop loses at most that much."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, progress: bool = True,
                 command: str | None = None) -> None:
        self.cfg, self.resume, self.progress, self.command = cfg, resume, progress, command
        self.state = TrainState()
        self.run_dir = Path(cfg.out)

    def run(self, held: contextlib.ExitStack) -> dict[str, Any]:
        self._setup(held)
        stopper = self._loop()
        if self.cfg.precise_bn_batches and self.state.step >= self.total_steps and self.dist.main \
                and self.state.precise_bn_step != self.state.step:
            self._precise_bn()
        best = self.state.best_score if self.validator is not None and self.validator.available else None
        summary = {"run": str(self.run_dir), "steps": self.state.step, "total_steps": self.total_steps,
                   "best_val_psnr": best, "elapsed_seconds": self.state.elapsed_seconds,
                   "interrupted": stopper.signal is not None}
        if self.dist.main:
            atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        return summary

    def _setup(self, held: contextlib.ExitStack) -> None:
        cfg = self.cfg
        self._setup_device()
        if not self.resume and has_checkpoint(self.run_dir):
            raise DeepDenoiseError(f"{self.run_dir}: a run exists there; use --resume or another --out")
        self.source = make_source(cfg)
        self.spe = cfg.steps_per_epoch or self.source.steps_per_epoch
        self.total_steps = cfg.epochs * self.spe
        torch.manual_seed(cfg.seed)
        self.model = self._build_model()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.run_dir.mkdir(parents=True, exist_ok=True)  # only once the data and the model are known to be valid
        if self.dist.main:
            held.enter_context(RunLock(self.run_dir))
            clean_stale_temporaries(self.run_dir)
        if self.resume:
            self._restore()
        self.net = self._wrap_parallel()
        self.log_path = self.run_dir / "log.csv"
        self.validator = Validator(cfg, self.device).load() if self.dist.main else None
        if self.dist.main:
            atomic_write_text(self.run_dir / "config.yaml", cfg.to_yaml())
            if not self.log_path.exists():
                atomic_write_text(self.log_path, ",".join(LOG_FIELDS) + "\n")
        self.hardware = (torch.cuda.get_device_name(self.device) if self.device.type == "cuda"
                         else f"{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads")

    def _setup_device(self) -> None:
        device = pick_device(self.cfg.device)
        self.dist = init_distributed(device)
        if device.type == "cuda" and self.dist.world > 1:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.device = device
        self.amp = self.cfg.amp and (device.type == "cuda" or cpu_has_bf16())

    def _build_model(self) -> Denoiser:
        cfg = self.cfg
        model = create_model(cfg.model, channels=self.source.channels, **cfg.model_overrides)
        if cfg.init_from and not self.resume:
            from deepdenoise.weights.format import load_weights

            init, _ = load_weights(cfg.init_from)
            state_init, fresh = adapt_state(init.state_dict(), model.state_dict())
            model.load_state_dict(state_init)
            if fresh:
                log.info("init_from: %d tensors not in %s are new (new residual blocks start as the identity)",
                         fresh, cfg.init_from)
        return model.to(self.device).to(memory_format=torch.channels_last)  # type: ignore[call-overload,no-any-return]

    def _restore(self) -> None:
        if not has_checkpoint(self.run_dir):
            raise DeepDenoiseError(f"{self.run_dir}: no checkpoint to resume from")
        self.state = TrainState.from_checkpoint(load_checkpoint(self.run_dir, self.model, self.optimizer))
        if self.dist.main:
            truncate_log(self.run_dir / "log.csv", self.state.step)
        log.info("resumed %s at step %d / %d", self.run_dir, self.state.step, self.total_steps)

    def _wrap_parallel(self) -> torch.nn.Module:
        """The module the steps call: the model, or its DDP wrapper under torchrun."""
        if self.dist.world == 1:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        model: torch.nn.Module = self.model
        if self.device.type == "cuda":  # batch statistics over the global batch (SyncBatchNorm is GPU-only;
            # on CPU/gloo each rank normalises with its own shard's statistics)
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda" else None)

    def _step(self, step: int, lr: float) -> tuple[torch.Tensor, int]:
        """One optimizer step; returns (the batch's loss, on the device, and the batch size)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        clean, noisy, sigma = noisy_batch(self.source, self.cfg, step, self.dist, self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.net(noisy, sigma)  # [B, C, P, P]
        loss = (F.l1_loss if self.cfg.loss == "l1" else F.mse_loss)(out.float(), clean)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return loss.detach(), clean.shape[0]

    def _loop(self) -> StopOnSignal:
        from tqdm import tqdm

        st, cfg = self.state, self.cfg
        self.net.train()
        bar = tqdm(total=self.total_steps, initial=st.step, disable=not (self.progress and self.dist.main),
                   mininterval=5.0, unit="step", desc=self.run_dir.name)
        loss_sum = torch.zeros((), device=self.device)  # stays on the device: no sync per step
        budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None
        last_ckpt, stop = time.monotonic(), False
        with StopOnSignal() as stopper:
            while st.step < self.total_steps and not stop:
                lr = lr_at(cfg, st.step, self.spe, st.elapsed_seconds)
                t0 = time.monotonic()
                loss, b = self._step(st.step, lr)
                dt = time.monotonic() - t0
                st.step += 1
                st.elapsed_seconds += dt
                st.epoch_seconds += dt
                loss_sum += loss * b
                st.epoch_count += b
                bar.update(1)
                epoch_end = st.step % self.spe == 0
                if budget_s is not None and any_rank(st.elapsed_seconds >= budget_s, self.dist, self.device):
                    stop = epoch_end = True
                interrupted = any_rank(stopper.signal is not None, self.dist, self.device)  # all ranks stop together
                stop = stop or interrupted
                if epoch_end or interrupted or time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60:
                    self._add_loss(float(loss_sum))
                    loss_sum.zero_()
                    if epoch_end and self.dist.main:
                        bar.write(self._end_epoch(lr))
                    if self.dist.main:
                        save_checkpoint(self.run_dir, self.model, self.optimizer, asdict(st))
                    last_ckpt = time.monotonic()
        bar.close()
        return stopper

    def _add_loss(self, total: float) -> None:
        self.state.epoch_loss += total
        if not math.isfinite(self.state.epoch_loss):
            raise DeepDenoiseError(f"the loss became NaN or infinite before step {self.state.step}; the last good "
                                   f"checkpoint is kept in {self.run_dir} (lower lr or set grad_clip)")

    def _end_epoch(self, lr: float) -> str:
        """Validate, log, keep the best weights; returns the line the progress bar shows."""
        st = self.state
        assert self.validator is not None
        val = self.validator(self.model, self.amp)
        loss = st.epoch_loss / max(1, st.epoch_count)
        speed = st.epoch_count * self.dist.world / max(1e-9, st.epoch_seconds)
        row = log_row(st.step / self.spe, st.step, lr, st, val, self.validator.psnr_noisy if val is not None else None,
                      loss, speed)
        append_log(self.log_path, row)
        st.epoch_loss, st.epoch_count, st.epoch_seconds = 0.0, 0, 0.0
        self._keep_if_best(val if val is not None else -loss, val)
        return (f"epoch {row['epoch']}: loss {row['loss']} val PSNR {row['val_psnr']} dB "
                f"({row['patches_per_s']} patches/s)")

    def _keep_if_best(self, score: float, val: float | None, extra: dict[str, Any] | None = None) -> None:
        if score <= self.state.best_score:
            return
        assert self.validator is not None
        self.state.best_score = score
        meta = training_meta(self.cfg, self.command, self.state.step / self.spe, self.state, self.hardware, val,
                             self.validator.sigma)
        meta["training"].update(extra or {})
        save_weights(self.model, self.run_dir / "best", meta)

    def _precise_bn(self) -> None:
        """Batch-norm statistics recomputed over ``precise_bn_batches`` fresh batches at the end."""
        st, cfg = self.state, self.cfg
        assert self.validator is not None
        recalibrate_bn(self.model, self.source, cfg, self.device, self.amp)
        val = self.validator(self.model, self.amp)
        st.precise_bn_step = st.step
        log.info("precise BN over %d batches: val PSNR %s dB", cfg.precise_bn_batches, val)
        append_log(self.log_path, log_row(st.step / self.spe, st.step, "precise-bn", st, val,
                                          self.validator.psnr_noisy if val is not None else None))
        if val is not None:
            self._keep_if_best(val, val, {"precise_bn_batches": cfg.precise_bn_batches})
        save_checkpoint(self.run_dir, self.model, self.optimizer, asdict(st))


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          command: str | None = None) -> dict[str, Any]:
    """Train (or resume) a run in ``cfg.out``; returns a summary dict.

    Under torchrun every rank calls this; the process group is torn down after the run's locals
    (the DDP wrapper among them) are released, so every rank exits cleanly.
    """
    try:
        with contextlib.ExitStack() as held:  # the run folder's lock, once the folder exists
            summary = Trainer(cfg, resume, progress, command).run(held)
    except BaseException:
        finish_distributed(wait=False)  # the other ranks may be inside a collective: do not wait for them
        raise
    finish_distributed()
    return summary
