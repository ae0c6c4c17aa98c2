"""DistributedDataParallel setup for runs launched by ``torchrun``.

``torchrun --nproc_per_node=N -m dwq.cli.main train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK and the
rendezvous (MASTER_ADDR); :func:`setup` then joins the process group (NCCL on CUDA, gloo on CPU),
also for N = 1, so that a one-GPU machine runs the same DDP and NCCL code as a cluster, and returns
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
    if not launched():
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


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher that sets the rendezvous)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def active() -> bool:
    """Whether this process is in an initialized process group."""
    return dist.is_available() and dist.is_initialized()


def cleanup():
    if dist.is_initialized():
        dist.destroy_process_group()
