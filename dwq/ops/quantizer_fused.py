"""Fused quantizer ops (issue 10): ``torch.ops.dwq.act_qparams`` and
``torch.ops.dwq.weight_fake_quantize`` (C++ kernels in csrc/ops/quantizer_fused.cpp, CUDA ones in
csrc/cuda/quantizer_fused.cu).

They compute, in one pass (one launch on GPUs) each, what dwq.quant's ActQuantizer /
WeightQuantizer compute with a dozen small torch ops, with the same float32 arithmetic
(csrc/common/arith.h); the pure-PyTorch path in dwq.quant is their reference, and
tests/test_quantizer_fused.py compares them bit for bit on CPU (and on CUDA where present: the
CUDA kernels were compiled without a GPU and have not yet run). ``available(x, op)`` says
whether a kernel serves x.
"""
from typing import Optional, Tuple

import torch

from dwq.ops._lib import HAS_EXT, fake_same_device, has_kernel

FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # what the fused kernels read and write
HALF_DTYPES = (torch.float16, torch.bfloat16)  # what weight_fake_quantize also writes from a float32 w


def available(x: torch.Tensor, op: str) -> bool:
    """Whether the fused kernel ``op`` serves ``x`` (a CPU or CUDA float32/float16/bfloat16 tensor)."""
    if x.dtype not in FUSED_DTYPES:
        return False
    # (is_cpu / is_cuda, not x.device.type: a torch.device made per call, at every forward of every layer)
    return has_kernel(op, "cpu") if x.is_cpu else x.is_cuda and has_kernel(op, "cuda")


def act_qparams(x: torch.Tensor, running_min: torch.Tensor, running_max: torch.Tensor, initialized: torch.Tensor,
                slot: int, observed: int, bits: int, ema: float, training: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor activation range, EMA update and ``(scale, zero_point)``, one launch: ActQuantizer's
    forward with ``zero_point="int"``.

    x: CPU or CUDA float32/float16/bfloat16, any shape (not differentiated). running_min / running_max:
    float32 [S], initialized: bool [S] on x's device. Train mode: the qparams of x's own range, and
    the running ranges of ``slot`` and ``observed`` updated in place (a slot's first batch
    initializes it; then ``ema * running + (1 - ema) * batch``). Eval mode: the range of ``slot``
    if initialized, else of ``observed`` if initialized, else x's. Returns scale float32 [1],
    zero_point int32 [1]. A NaN range gives a NaN scale; on CPU the caller raises on it, on CUDA the
    kernel itself fails a device-side assert (asynchronous, as ``torch._assert_async``).

    A train-mode call bumps the buffers' version counters, as torch's in-place ops do (autograd then
    refuses a value saved before the update instead of using the new one), and refuses inference-mode
    buffers outside inference mode before any write: the op's own ADInplaceOrView kernel does both
    (csrc/ops/inplace_versions.cpp), so ``torch.ops.dwq.act_qparams`` called directly does too.
    """
    return torch.ops.dwq.act_qparams.default(x, running_min, running_max, initialized, slot, observed, bits, ema,
                                             training)


def weight_fake_quantize(w: torch.Tensor, bits: int, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Per-output-channel (dim 0) fake quantization of a weight, range and qparams included, one
    pass. w: CPU or CUDA float32/float16/bfloat16 [C_out, ...]. Returns a contiguous tensor in w's
    dtype, or in ``dtype``: float16 or bfloat16 for a float32 w, the float32 result rounded once,
    bit for bit ``weight_fake_quantize(w, bits).to(dtype)`` in one pass (autocast's dtype: the conv
    then casts nothing). Straight-through gradient to w (in w's dtype). A channel holding NaN or inf
    (or a range wider than float32 holds) is an error: on CPU a ValueError, on CUDA a device-side
    assert (asynchronous)."""
    return torch.ops.dwq.weight_fake_quantize.default(w, bits, dtype)


def _defined(name: str) -> bool:
    return HAS_EXT and hasattr(torch.ops.dwq, name)


if _defined("act_qparams"):  # (an older dwq._C without the fused ops still imports)

    @torch.library.register_fake("dwq::act_qparams")
    def _(x, running_min, running_max, initialized, slot, observed, bits, ema, training):
        fake_same_device("act_qparams", x, "x", running_min=running_min, running_max=running_max,
                         initialized=initialized)
        torch._check(2 <= bits <= 16, lambda: f"act_qparams: bits must be in 2..16, got {bits}")
        torch._check(not training or x.numel() > 0, lambda: "act_qparams: x is empty: train mode needs a range")
        return x.new_empty((1,), dtype=torch.float32), x.new_empty((1,), dtype=torch.int32)

if _defined("weight_fake_quantize"):

    @torch.library.register_fake("dwq::weight_fake_quantize")
    def _(w, bits, dtype=None):
        torch._check(2 <= bits <= 16, lambda: f"weight_fake_quantize: bits must be in 2..16, got {bits}")
        torch._check(dtype in (None, w.dtype) or (w.dtype == torch.float32 and dtype in HALF_DTYPES),
                     lambda: f"weight_fake_quantize: dtype must be w's ({w.dtype}) or, for a float32 w, float16 or "
                             f"bfloat16; got {dtype}")
        return torch.empty_like(w, memory_format=torch.contiguous_format, dtype=dtype or w.dtype)

    # The straight-through gradient is the op's own C++ Autograd kernel (csrc/ops/straight_through.cpp).
