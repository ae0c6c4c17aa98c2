"""DistributedDataParallel setup for runs launched by ``torchrun``.

``torchrun --nproc_per_node=N -m dwq.cli.main train ...`` sets RANK/WORLD_SIZE/LOCAL_RANK and the
rendezvous (MASTER_ADDR); :func:`setup` then joins the process group (NCCL on CUDA, gloo on CPU),
also for N = 1, so that a one-GPU machine runs the same DDP and NCCL code as a cluster, and returns
``(rank, world, device)``. Without those variables it returns ``(0, 1, device)``.
:func:`unwrap` gives the model inside a DistributedDataParallel wrapper.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn as nn


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


def cleanup(synchronize: bool = False):
    """Leaves the process group. ``synchronize=True`` (after a run that completed on every rank) first
    waits for all ranks, so that none tears its connections down while another still uses them (rank
    0 may still be writing its checkpoint); never after a failure, where a rank may not arrive."""
    if dist.is_initialized():
        if synchronize:
            barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Waits until every rank of the process group arrives (NCCL: on this process's device, set by
    :func:`setup`, rather than one guessed from the rank)."""
    dist.barrier(device_ids=[torch.cuda.current_device()] if dist.get_backend() == "nccl" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The model a DistributedDataParallel wraps; any other module as it is."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
