"""Fused quantizer ops for training on GPUs (issue 10): ``torch.ops.dwq.act_qparams`` and
``torch.ops.dwq.weight_fake_quantize`` (CUDA kernels in csrc/cuda/quantizer_fused.cu).

They compute, in one launch each, what dwq.quant's ActQuantizer / WeightQuantizer compute with a
dozen small torch ops, with the same float32 arithmetic (the pure-PyTorch path in dwq.quant is
their reference, and what runs on CPU). CUDA only; ``available(x)`` says whether to use them.
The kernels were compiled without a GPU and have not yet run: tests/test_quantizer_fused.py
compares them with the reference bit for bit where CUDA is present.
"""
from typing import Tuple

import torch

from dwq.ops._lib import HAS_EXT, has_kernel

_AVAILABLE = {}


def available(x: torch.Tensor, op: str) -> bool:
    """Whether the fused CUDA kernel ``op`` serves ``x`` (a CUDA float32/16 tensor)."""
    if x.device.type != "cuda" or x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return False
    if op not in _AVAILABLE:
        _AVAILABLE[op] = has_kernel(op, "cuda")
    return _AVAILABLE[op]


def act_qparams(x: torch.Tensor, running_min: torch.Tensor, running_max: torch.Tensor, initialized: torch.Tensor,
                slot: int, bits: int, ema: float, training: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor activation range, EMA update of ``slot`` and ``(scale, zero_point)``, one launch.

    x: CUDA float32/float16/bfloat16, any shape (not differentiated). running_min / running_max:
    float32 [P], initialized: bool [P] on x's device, updated in place when ``training`` (the first
    batch of a slot initializes it; then ``ema * running + (1 - ema) * batch``); in eval mode the
    running range is used once initialized. Returns scale float32 [1], zero_point int32 [1] (a NaN
    range gives a NaN scale: the caller asserts on it asynchronously).
    """
    return torch.ops.dwq.act_qparams.default(x, running_min, running_max, initialized, slot, bits, ema, training)


def weight_fake_quantize(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel (dim 0) fake quantization of a weight, range and qparams included, one
    launch. w: CUDA float32/float16/bfloat16 [C_out, ...]. Straight-through gradient to w."""
    return torch.ops.dwq.weight_fake_quantize.default(w, bits)


def _defined(name: str) -> bool:
    return HAS_EXT and hasattr(torch.ops.dwq, name)


if _defined("act_qparams"):  # (an older dwq._C without the fused ops still imports)

    @torch.library.register_fake("dwq::act_qparams")
    def _(x, running_min, running_max, initialized, slot, bits, ema, training):
        torch._check(2 <= bits <= 16, lambda: f"act_qparams: bits must be in 2..16, got {bits}")
        return x.new_empty((1,), dtype=torch.float32), x.new_empty((1,), dtype=torch.int32)

if _defined("weight_fake_quantize"):

    @torch.library.register_fake("dwq::weight_fake_quantize")
    def _(w, bits):
        torch._check(2 <= bits <= 16, lambda: f"weight_fake_quantize: bits must be in 2..16, got {bits}")
        return torch.empty_like(w, memory_format=torch.contiguous_format)

    def _weight_backward(ctx, grad):
        return grad, None  # straight-through

    torch.library.register_autograd("dwq::weight_fake_quantize", _weight_backward, setup_context=lambda c, i, o: None)
