"""DistributedDataParallel setup for runs launched by ``torchrun``.

``torchrun --nproc_per_node=N -m dwq.cli.main train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK;
:func:`setup` then joins the process group (NCCL on CUDA, gloo on CPU) and returns
``(rank, world, device)``. Without those variables it returns ``(0, 1, device)``.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def setup(device: str | None = None):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if world <= 1:
        return 0, 1, torch.device(device)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return rank, world, dev


def cleanup():
    if dist.is_initialized():
        dist.destroy_process_group()
