"""Resumable training checkpoints without pickle.

Tensors (model and optimizer state) go to ``checkpoint-STEP.safetensors``; everything else
(step, scheduler, config, best PSNR, elapsed time) to ``checkpoint.json``, which is written last
and names the tensor file, so a crash at any moment leaves a consistent pair. Batches are a pure
function of (seed, step), so the step counter is the whole data-position and RNG state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepdenoise.hub import FORMAT_VERSION, atomic_write_bytes, atomic_write_text, model_meta


def save_checkpoint(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any]) -> Path:
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, st in opt["state"].items():
        for key, val in st.items():
            t = val if isinstance(val, torch.Tensor) else torch.tensor(val)
            tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
    name = f"checkpoint-{state['step']:08d}.safetensors"
    atomic_write_bytes(run_dir / name, save(tensors))
    info = {"format_version": FORMAT_VERSION, **model_meta(model), "tensors": name,
            "param_groups": opt["param_groups"], **state}
    atomic_write_text(run_dir / "checkpoint.json", json.dumps(info, indent=2) + "\n")
    for old in run_dir.glob("checkpoint-*.safetensors"):
        if old.name != name:
            old.unlink()
    return run_dir / name


def load_checkpoint(run_dir: Path, model: nn.Module,
                    optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    from safetensors.torch import load_file

    info = json.loads((run_dir / "checkpoint.json").read_text())
    tensors = load_file(str(run_dir / info["tensors"]))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            opt_state.setdefault(int(idx), {})[key] = v
    optimizer.load_state_dict({"state": opt_state, "param_groups": info["param_groups"]})
    return info
