"""Bit-reproducible training on CUDA (``TrainConfig.deterministic``, ``dwq train --deterministic``).

On the CPU a dwq training step is already reproducible. On CUDA, cuDNN picks the fastest algorithm
(some of which add with atomics, so the last bits of a gradient vary from run to run) and cuBLAS
needs a fixed workspace to reduce in a fixed order; then a resumed run cannot equal an uninterrupted
one bit for bit. :func:`deterministic` turns on torch's deterministic algorithms (an op that has none
raises an error that names it) and cuDNN's deterministic mode for the span of a fit, and restores
the previous settings after it.
"""
from __future__ import annotations

import contextlib
import os

import torch

CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_SETTING = ":4096:8"


def prepare_process():
    """Sets cuBLAS' fixed workspace unless the environment sets one. cuBLAS reads it when its handle
    is created, so it must come before the process's first CUDA matrix product: :func:`deterministic`
    calls it, which is early enough for ``dwq train`` (nothing multiplies on the GPU before the fit);
    code that does should call it first."""
    os.environ.setdefault(CUBLAS_ENV, CUBLAS_SETTING)


@contextlib.contextmanager
def deterministic(enabled: bool = True):
    """Deterministic algorithms inside the block (nothing changes when ``enabled`` is False)."""
    if not enabled:
        yield
        return
    prepare_process()
    cudnn = torch.backends.cudnn
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              cudnn.deterministic, cudnn.benchmark)
    torch.use_deterministic_algorithms(True)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        cudnn.deterministic, cudnn.benchmark = before[2], before[3]
