"""Data-parallel training under torchrun: rank bookkeeping and a clean start and end.

Every rank runs :func:`deepdenoise.training.trainer.train`; rank 0 alone validates and writes. The helpers
here keep the ranks in step where their own clocks or an early exit could split them.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size())


def any_rank(flag: bool, dist_info: DistInfo, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any: ranks time their own steps, so a time budget
    could otherwise stop one rank a step before another and leave it waiting in all-reduce forever."""
    if dist_info.world <= 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([float(flag)], device=device)  # [1]
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def finish_distributed(wait: bool = True) -> None:
    """Wait for rank 0's last validation and checkpoint, then tear the process group down.

    Called once the DistributedDataParallel wrapper is gone: a process group whose last reference
    dies during interpreter shutdown (held by a live DDP, or never destroyed) aborts the process
    with SIGABRT from gloo's worker threads and fails the whole torchrun.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        gc.collect()  # DDP's reducer sits in reference cycles
        if wait:
            dist.barrier()
        dist.destroy_process_group()
