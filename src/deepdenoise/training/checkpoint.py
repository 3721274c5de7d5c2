"""Resumable training checkpoints without pickle, with a fallback and a lock.

Tensors (model and optimizer state) go to ``checkpoint-STEP.safetensors``; everything else
(step, scheduler, config, best PSNR, elapsed time) to ``checkpoint.json``, which is written last
and names the tensor file, so a crash at any moment leaves a consistent pair. The pair before it
is kept as ``checkpoint-prev.json`` (and ``previous-STEP.safetensors``): when the newest is damaged (truncated,
garbage, non-finite, not this model) resuming falls back to it with a one-line warning. Weights
that are not finite are never saved. Batches are a pure function of (seed, step), so the step
counter is the whole data-position and RNG state.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from deepdenoise.errors import DeepDenoiseError
from deepdenoise.fsutil import atomic_write_bytes, atomic_write_text
from deepdenoise.models import Denoiser, model_meta
from deepdenoise.weights.format import FORMAT_VERSION

log = logging.getLogger(__name__)
NEWEST, PREVIOUS = "checkpoint.json", "checkpoint-prev.json"


class RunLocked(DeepDenoiseError):
    """Another process is training into the same folder."""


def save_checkpoint(run_dir: Path, model: Denoiser, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any]) -> Path:
    """Write the newest checkpoint, keeping the one before it; refuses non-finite weights."""
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise DeepDenoiseError(f"weights became NaN or infinite at step {state['step']} ({bad[0]}); "
                               "the last good checkpoint is kept (lower lr or set grad_clip)")
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for key, val in st.items():
            t = val if isinstance(val, torch.Tensor) else torch.tensor(val)
            tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
    name = f"checkpoint-{state['step']:08d}.safetensors"
    atomic_write_bytes(run_dir / name, save(tensors))
    _keep_previous(run_dir, name)
    info = {"format_version": FORMAT_VERSION, **model_meta(model), "tensors": name,
            "param_groups": opt["param_groups"], **state}
    atomic_write_text(run_dir / NEWEST, json.dumps(info, indent=2) + "\n")
    keep = {name, _tensor_name(run_dir / PREVIOUS)}
    for old in [*run_dir.glob("checkpoint-*.safetensors"), *run_dir.glob("previous-*.safetensors")]:
        if old.name not in keep:
            old.unlink()
    return run_dir / name


def _keep_previous(run_dir: Path, new_name: str) -> None:
    """Make the current newest checkpoint the previous one: its tensors copied to
    ``previous-STEP.safetensors`` (a copy, not a link: damage to one file never reaches both), then
    ``checkpoint-prev.json`` naming them; every moment has a usable newest or previous. Runs
    committed to share their progress leave the previous pair out (it is only a fallback)."""
    newest = run_dir / NEWEST
    old = _tensor_name(newest)
    if old is None or old == new_name or not (run_dir / old).exists():
        return
    info = json.loads(newest.read_text())
    kept = "previous-" + old.removeprefix("checkpoint-")
    atomic_write_bytes(run_dir / kept, (run_dir / old).read_bytes())
    info["tensors"] = kept
    atomic_write_text(run_dir / PREVIOUS, json.dumps(info, indent=2) + "\n")


def _tensor_name(meta: Path) -> str | None:
    try:
        name = json.loads(meta.read_text())["tensors"]
        return name if isinstance(name, str) and Path(name).name == name else None
    except Exception:  # missing or damaged: nothing of it to keep
        return None


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / NEWEST).exists() or (run_dir / PREVIOUS).exists()


def load_checkpoint(run_dir: Path, model: Denoiser,
                    optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Load the newest usable checkpoint into ``model`` and ``optimizer``; returns its info.

    Falls back to the previous checkpoint, with a warning, when the newest cannot be used."""
    problems = []
    for meta in (run_dir / NEWEST, run_dir / PREVIOUS):
        if not meta.exists():
            continue
        try:
            info = _load_one(meta, model, optimizer)
        except Exception as exc:  # any damage: JSON, tensors, shapes, NaN
            problems.append(f"{meta.name}: {_short(exc)}")
            log.warning("%s is damaged (%s)%s", meta, _short(exc),
                        "; trying the previous checkpoint" if meta.name == NEWEST else "")
            continue
        if problems:
            log.warning("resuming from the previous checkpoint (step %s)", info["step"])
        return info
    raise DeepDenoiseError(f"{run_dir}: no usable checkpoint ({'; '.join(problems) or 'none found'})")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _load_one(meta: Path, model: Denoiser, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    from safetensors.torch import load_file

    info = json.loads(meta.read_text())
    if not isinstance(info, dict) or not isinstance(info.get("tensors"), str) or not isinstance(
            info.get("step"), int) or not isinstance(info.get("param_groups"), list):
        raise ValueError("not a checkpoint description (tensors, step, param_groups)")
    name = info["tensors"]
    if Path(name).name != name or not name.endswith(".safetensors"):
        raise ValueError(f"tensor file name {name!r} is not a file in the run folder")
    tensors = load_file(str(meta.parent / name))
    weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    if any(v.is_floating_point() and not bool(torch.isfinite(v).all()) for v in weights.values()):
        raise ValueError("weights are not finite")
    model.load_state_dict(weights)
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            opt_state.setdefault(int(idx), {})[key] = v
    optimizer.load_state_dict({"state": opt_state, "param_groups": info["param_groups"]})
    return info


class RunLock:
    """An exclusive lock on a run folder (``.lock``, flock: released by the kernel when the process
    dies), so two trainings cannot write one folder."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise RunLocked(f"{self.path.parent}: another training run is writing this folder") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock; the file stays (removing it would race a new locker)
            self.fd = None


def clean_stale_temporaries(run_dir: Path) -> int:
    """Remove temporary files an interrupted write left (``.NAME.XXXX``); returns how many."""
    count = 0
    for tmp in run_dir.glob(".*.*"):
        if tmp.name != ".lock" and tmp.is_file():
            tmp.unlink(missing_ok=True)
            count += 1
    return count


def truncate_log(log_path: Path, step: int) -> int:
    """Drop log rows written after ``step`` (the run died after logging, before its checkpoint), so
    that a resumed run does not log them twice; returns how many were dropped."""
    if not log_path.exists():
        return 0
    lines = log_path.read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if _row_step(ln) <= step]
    if len(keep) != len(lines):
        atomic_write_text(log_path, "".join(keep))
    return len(lines) - len(keep)


def _row_step(line: str) -> int:
    parts = line.split(",")
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return -1
