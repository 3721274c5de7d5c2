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
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from deepdenoise.checkpoint import (
    RunLock,
    clean_stale_temporaries,
    has_checkpoint,
    load_checkpoint,
    save_checkpoint,
    truncate_log,
)
from deepdenoise.config import TrainConfig
from deepdenoise.data.sources import CropSource, PatchSource, step_generator
from deepdenoise.distributed import DistInfo, any_rank, finish_distributed, init_distributed
from deepdenoise.errors import DeepDenoiseError
from deepdenoise.hub import atomic_write_text, save_weights
from deepdenoise.metrics import batch_psnr
from deepdenoise.models import create_model
from deepdenoise.noise import add_gaussian_noise, local_std, random_noise_maps

LOG_FIELDS = ["epoch", "step", "loss", "val_psnr_noisy", "val_psnr", "lr", "epoch_seconds",
              "elapsed_seconds", "patches_per_s"]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeepDenoiseError("CUDA was requested but no GPU is available")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """AVX-512 BF16 / AMX: where bfloat16 autocast is fast on the CPU."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


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
        path = Path(cfg.val) if cfg.val else Path(cfg.data) / ("test_color.npy" if cfg.color else "test.npy")
        self.device = device
        self.clean: torch.Tensor | None = None
        self.maps: torch.Tensor | None = None
        self.sigma = cfg.val_sigma if cfg.val_sigma is not None else (25.0 if cfg.sigma_max else cfg.sigma)
        if not path.exists():
            print(f"note: no validation patches at {path}; validation PSNR skipped", file=sys.stderr)
            return
        arr = np.load(path, allow_pickle=False)
        if cfg.val_limit:
            arr = arr[: cfg.val_limit]
        arr = arr[:, None] if arr.ndim == 3 else np.moveaxis(arr, -1, 1)
        self.clean = torch.from_numpy(np.ascontiguousarray(arr)).float() / 255.0  # [N, C, P, P]
        self.noisy = add_gaussian_noise(self.clean, self.sigma, seed=12345)  # [N, C, P, P]
        if cfg.noise == "camera":  # shot 0.04, read 0.01: the middle row of docs/real-noise.md
            from deepdenoise.realnoise import CameraNoise, simulate_camera

            self.noisy, self.clean = simulate_camera(self.clean, CameraNoise(0.04, 0.01), seed=12345)
            self.maps = local_std(self.noisy - self.clean)  # [N, C, P, P]: what a noise-map model is given
        self.psnr_noisy = float(batch_psnr(self.noisy, self.clean).mean())

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

    if cfg.noise == "camera":  # the target is the noise-free pipeline's image
        from deepdenoise.realnoise import camera_training_batch

        ref, noisy, sig = camera_training_batch(clean, g, cfg.batch_size, shard, cfg.camera_shot_max,
                                                cfg.camera_read_max, cfg.camera_jpeg, cfg.camera_isp)
        if cfg.camera_mix > 0:  # some patches keep plain Gaussian noise (varying maps)
            pick = shard(torch.rand(cfg.batch_size, generator=g) < cfg.camera_mix).to(device).reshape(-1, 1, 1, 1)
            _, g_noisy, g_map = _gaussian_batch(clean, cfg, g, shard, device, varying=True)
            ref, noisy, sig = (torch.where(pick, clean, ref), torch.where(pick, g_noisy, noisy),
                               torch.where(pick, g_map, sig))
        clean, noisy = ref, noisy.contiguous(memory_format=torch.channels_last)
        sigma: torch.Tensor | float = sig
    else:
        clean, noisy, sigma = _gaussian_batch(clean, cfg, g, shard, device, varying=cfg.noise_maps == "varying")
    if cfg.map_jitter > 0:  # the level a photo's estimate gives is off by some percent: learn to cope
        off = shard(torch.exp(cfg.map_jitter * torch.randn(cfg.batch_size, generator=g))).to(device)  # [b]
        s = torch.as_tensor(sigma, dtype=torch.float32, device=device)
        sigma = s * (off if s.ndim == 1 else off.reshape(-1, 1, 1, 1)) if s.ndim else s * off
    return clean, noisy, sigma


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
    """Ctrl-C or SIGTERM (a session ending, ``kill``) while training: finish the step, write a
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


def training_meta(cfg: TrainConfig, command: str | None, epochs: float, state: dict[str, Any], hardware: str,
                  val: float | None, val_sigma: float) -> dict[str, Any]:
    """What the best weights record about how they were made (the brief: command, data, epochs, PSNR)."""
    return {"training": {"command": command, "config": cfg.to_dict(), "steps": state["step"],
                         "epochs": round(epochs, 3), "wall_seconds": round(state["elapsed_seconds"]),
                         "hardware": hardware, "val_psnr": val, "val_sigma": val_sigma}}


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          command: str | None = None) -> dict[str, Any]:
    """Train (or resume) a run in ``cfg.out``; returns a summary dict.

    Under torchrun every rank calls this; the process group is torn down after the run's locals
    (the DDP wrapper among them) are released, so every rank exits cleanly.
    """
    try:
        with contextlib.ExitStack() as held:  # the run folder's lock, once the folder exists
            summary = _train(cfg, resume, progress, command, held)
    except BaseException:
        finish_distributed(wait=False)  # the other ranks may be inside a collective: do not wait for them
        raise
    finish_distributed()
    return summary


def _train(cfg: TrainConfig, resume: bool, progress: bool, command: str | None,
           held: contextlib.ExitStack) -> dict[str, Any]:
    from tqdm import tqdm

    device = pick_device(cfg.device)
    dist_info = init_distributed(device)
    if device.type == "cuda" and dist_info.world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    amp = cfg.amp and (device.type == "cuda" or cpu_has_bf16())
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    run_dir = Path(cfg.out)
    if not resume and has_checkpoint(run_dir):
        raise DeepDenoiseError(f"{run_dir}: a run exists there; use --resume or another --out")

    source = make_source(cfg)
    spe = cfg.steps_per_epoch or source.steps_per_epoch
    total_steps = cfg.epochs * spe
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, channels=source.channels, **cfg.model_overrides)
    if cfg.init_from and not resume:
        from deepdenoise.hub import load_weights

        init, _ = load_weights(cfg.init_from)
        state_init, fresh = adapt_state(init.state_dict(), model.state_dict())
        model.load_state_dict(state_init)
        if fresh:
            print(f"init_from: {fresh} tensors not in {cfg.init_from} are new "
                  "(new residual blocks start as the identity)", file=sys.stderr)
    model = model.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run_dir.mkdir(parents=True, exist_ok=True)  # only once the data and the model are known to be valid
    if dist_info.main:
        held.enter_context(RunLock(run_dir))
        clean_stale_temporaries(run_dir)
    state: dict[str, Any] = {"step": 0, "best_psnr": -1.0, "precise_bn_step": -1, "elapsed_seconds": 0.0,
                             "epoch_loss": 0.0, "epoch_count": 0, "epoch_seconds": 0.0}
    if resume:
        if not has_checkpoint(run_dir):
            raise DeepDenoiseError(f"{run_dir}: no checkpoint to resume from")
        info = load_checkpoint(run_dir, model, optimizer)
        state.update({k: info[k] for k in state if k in info})
        if dist_info.main:
            truncate_log(run_dir / "log.csv", int(state["step"]))
        print(f"resumed {run_dir} at step {state['step']} / {total_steps}", file=sys.stderr)
    if dist_info.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        if device.type == "cuda":  # batch statistics over the global batch (SyncBatchNorm is GPU-only;
            # on CPU/gloo each rank normalises with its own shard's statistics)
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ddp = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        net: torch.nn.Module = ddp
        core = ddp.module
    else:
        net = core = model
    if dist_info.main:
        atomic_write_text(run_dir / "config.yaml", cfg.to_yaml())
    validator = Validator(cfg, device) if dist_info.main else None
    log_path = run_dir / "log.csv"
    if dist_info.main and not log_path.exists():
        atomic_write_text(log_path, ",".join(LOG_FIELDS) + "\n")

    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads")
    last_ckpt = time.monotonic()
    net.train()
    step = int(state["step"])
    bar = tqdm(total=total_steps, initial=step, disable=not (progress and dist_info.main),
               mininterval=5.0, unit="step", desc=Path(cfg.out).name)
    loss_sum = torch.zeros((), device=device)
    budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None
    stop = False
    with StopOnSignal() as stopper:
        while step < total_steps and not stop:
            lr = lr_at(cfg, step, spe, state["elapsed_seconds"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            t0 = time.monotonic()
            clean, noisy, sigma = noisy_batch(source, cfg, step, dist_info, device)
            b = clean.shape[0]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = net(noisy, sigma)
            loss = (F.l1_loss if cfg.loss == "l1" else F.mse_loss)(out.float(), clean)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            step += 1
            dt = time.monotonic() - t0
            state["elapsed_seconds"] += dt
            state["epoch_seconds"] += dt
            loss_sum += loss.detach() * b  # stays on the device: no sync per step
            state["epoch_count"] += b
            state["step"] = step
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(lr=f"{lr:.1e}")
            epoch_end = step % spe == 0
            if budget_s is not None and any_rank(state["elapsed_seconds"] >= budget_s, dist_info, device):
                stop = epoch_end = True
            interrupted = any_rank(stopper.signal is not None, dist_info, device)  # every rank stops together
            stop = stop or interrupted
            want_ckpt = epoch_end or interrupted or time.monotonic() - last_ckpt > cfg.checkpoint_minutes * 60
            if want_ckpt:
                state["epoch_loss"] += float(loss_sum)
                loss_sum.zero_()
                if not math.isfinite(state["epoch_loss"]):
                    raise DeepDenoiseError(f"the loss became NaN or infinite before step {step}; the last good "
                                           f"checkpoint is kept in {run_dir} (lower lr or set grad_clip)")
            if epoch_end and dist_info.main:
                assert validator is not None
                val = validator(core, amp)
                row = {"epoch": f"{step / spe:.3f}", "step": step,
                       "loss": f"{state['epoch_loss'] / max(1, state['epoch_count']):.6g}",
                       "val_psnr_noisy": f"{validator.psnr_noisy:.4f}" if val is not None else "",
                       "val_psnr": f"{val:.4f}" if val is not None else "", "lr": f"{lr:.3e}",
                       "epoch_seconds": f"{state['epoch_seconds']:.1f}",
                       "elapsed_seconds": f"{state['elapsed_seconds']:.1f}",
                       "patches_per_s":
                           f"{state['epoch_count'] * dist_info.world / max(1e-9, state['epoch_seconds']):.1f}"}
                append_log(log_path, row)
                bar.write(f"epoch {row['epoch']}: loss {row['loss']} val PSNR {row['val_psnr']} dB "
                          f"({row['patches_per_s']} patches/s)")
                state.update(epoch_loss=0.0, epoch_count=0, epoch_seconds=0.0)
                score = val if val is not None else -float(str(row["loss"]))
                if score > state["best_psnr"]:
                    state["best_psnr"] = score
                    save_weights(core, run_dir / "best", training_meta(cfg, command, step / spe, state, hardware, val,
                                                                       validator.sigma))
            if dist_info.main and want_ckpt:
                save_checkpoint(run_dir, core, optimizer, state)
                last_ckpt = time.monotonic()
    bar.close()
    if cfg.precise_bn_batches and step >= total_steps and state.get("precise_bn_step") != step and dist_info.main:
        assert validator is not None
        recalibrate_bn(core, source, cfg, device, amp)
        val = validator(core, amp)
        state["precise_bn_step"] = step
        print(f"precise BN over {cfg.precise_bn_batches} batches: val PSNR {val} dB", file=sys.stderr)
        append_log(log_path, {
            "epoch": f"{step / spe:.3f}", "step": step, "loss": "", "lr": "precise-bn",
            "val_psnr_noisy": f"{validator.psnr_noisy:.4f}" if val is not None else "",
            "val_psnr": f"{val:.4f}" if val is not None else "", "epoch_seconds": "",
            "elapsed_seconds": f"{state['elapsed_seconds']:.1f}", "patches_per_s": ""})
        if val is not None and val > state["best_psnr"]:
            state["best_psnr"] = val
            meta = training_meta(cfg, command, step / spe, state, hardware, val, validator.sigma)
            meta["training"]["precise_bn_batches"] = cfg.precise_bn_batches
            save_weights(core, run_dir / "best", meta)
        save_checkpoint(run_dir, core, optimizer, state)
    summary = {"run": str(run_dir), "steps": step, "total_steps": total_steps,
               "best_val_psnr": state["best_psnr"], "elapsed_seconds": state["elapsed_seconds"],
               "interrupted": stopper.signal is not None}
    if dist_info.main:
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
