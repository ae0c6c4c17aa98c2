"""``add_relu_``: a ResNet block's residual add and its ReLU in one pass over memory (an integer
model's ``add`` step followed by ``relu``), where ``x.add_(other).relu_()`` reads and writes x twice;
``add_relu_quantize_``: the same, and the next quantized layer's input codes of the result in that
pass; ``add_affine_quantize_``: a pre-activation block's add (no ReLU) and the next block's batch norm,
ReLU and quantization in one pass. The values are torch's: ``torch.relu(x + other)``, NaN kept
(``aten::_add_relu_`` would make it 0 and hide a broken layer), ``x + other``, and ``quantize_act``'s
and ``affine_quantize_act``'s codes.
"""
import functools
import os
from typing import Optional, Tuple

import torch

from dwq.ops import qgemm as _qgemm
from dwq.ops._lib import HAS_EXT, has_kernel
from dwq.ops._lib import fake_same_device as _fake_same_device
from dwq.ops.fake_quant import check_relu, check_tensors
from dwq.ops.qgemm import IntPair, affine_quantize_act, qconv2d, quantize_act
from dwq.ops.qgemm_reference import affine_quantize_act_ref, codes_dtype, quantize_act_ref

__all__ = ["add_relu_", "add_relu_quantize_", "add_affine_quantize_", "qconv2d_residual", "add_relu_ref",
           "add_relu_quantize_ref", "add_affine_quantize_ref"]


def _kernel_takes(x: torch.Tensor, other: torch.Tensor) -> bool:
    # The kernel walks both as flat arrays: one dtype, shape and strides, x dense; it has no gradient.
    return (not (torch.is_grad_enabled() and (x.requires_grad or other.requires_grad))
            and x.dtype == torch.float32 and other.dtype == torch.float32 and x.device == other.device
            and x.shape == other.shape and x.stride() == other.stride()
            and (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)))


def add_relu_(x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``x = relu(x + other)`` in place; returns x.

    One pass on the CPU or CUDA kernel (x and other float32 of one shape and memory format, NCHW
    or channels-last, on one device), which has no gradient. Anything else (autograd recording, a
    broadcast ``other``, other dtypes or layouts, other devices, a build without the extension) is
    ``torch.relu_(x.add_(other))``: the same values, two passes, differentiable.
    """
    if _kernel_takes(x, other) and has_kernel("add_relu_", x.device.type):
        torch.ops.dwq.add_relu_.default(x, other)
        return x
    return torch.relu_(x.add_(other))


def add_relu_ref(x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """The pure-PyTorch reference (a new tensor): ``torch.relu(x + other)``."""
    return torch.relu(x + other)


def add_relu_quantize_(x: torch.Tensor, other: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                       bits: int) -> torch.Tensor:
    """``x = relu(x + other)`` in place; returns ``quantize_act(x, scale, zero_point, bits)``.

    One pass on the CPU kernel (each chunk is quantized while it is in cache) or the CUDA one, under
    the conditions of :func:`add_relu_`; elsewhere ``add_relu_`` then ``quantize_act`` on a copy of x,
    written back once the codes are made, so that a bad argument leaves x as it was, as the kernel's
    checks do. NaN in the result is an error, as in quantize_act (the kernel may have updated x by then).
    """
    if _kernel_takes(x, other) and has_kernel("add_relu_quantize_", x.device.type):
        return torch.ops.dwq.add_relu_quantize_.default(x, other, scale, zero_point, bits)
    if x.dtype != torch.float32:  # (else quantize_act's message, naming another op)
        raise ValueError(f"add_relu_quantize_: x must be float32, got {x.dtype}")
    y = add_relu_(x.clone(), other)
    codes = quantize_act(y, scale, zero_point, bits)
    x.copy_(y)
    return codes


def add_relu_quantize_ref(x: torch.Tensor, other: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                          bits: int):
    """The pure-PyTorch reference: (``relu(x + other)``, its ``quantize_act_ref`` codes), new tensors."""
    y = add_relu_ref(x, other)
    return y, quantize_act_ref(y, scale, zero_point, bits)


def add_affine_quantize_(x: torch.Tensor, other: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, relu: bool,
                         out_scale: torch.Tensor, out_zero_point: torch.Tensor, bits: int) -> torch.Tensor:
    """``x += other`` in place; returns ``affine_quantize_act(x, scale, bias, relu, out_scale,
    out_zero_point, bits)``: a pre-activation block's residual add and the next block's batch norm,
    ReLU and quantization.

    One pass on the CPU kernel (blocks of rows go through the affine and the quantization while in
    cache) or the CUDA one, under the conditions of :func:`add_relu_`; elsewhere ``x.add_(other)``
    then ``affine_quantize_act`` on a copy of x, written back once the codes are made (a bad argument
    leaves x as it was). NaN in the affine's result is an error (the kernel may have updated x by then).
    """
    check_relu("add_affine_quantize_", relu)  # (1 was taken by the kernel, refused by the fallback)
    if _kernel_takes(x, other) and has_kernel("add_affine_quantize_", x.device.type):
        return torch.ops.dwq.add_affine_quantize_.default(x, other, scale, bias, relu, out_scale, out_zero_point, bits)
    y = x.clone().add_(other)
    codes = affine_quantize_act(y, scale, bias, relu, out_scale, out_zero_point, bits)
    x.copy_(y)
    return codes


def add_affine_quantize_ref(x, other, scale, bias, relu, out_scale, out_zero_point, bits):
    """The pure-PyTorch reference: (``x + other``, its ``affine_quantize_act_ref`` codes), new tensors."""
    y = x + other
    return y, affine_quantize_act_ref(y, scale, bias, relu, out_scale, out_zero_point, bits)


@functools.lru_cache(maxsize=None)
def _cpu_isas() -> tuple:
    return tuple(_qgemm.supported_cpu_isas())


def _fused_epilogue_pays(device: torch.device) -> bool:
    """Whether qconv2d_residual's CPU kernel beats qconv2d + add_relu_quantize_ on the path ops take now
    (DWQ_CPU_ISA, else the fastest this CPU runs): on AVX-512 VNNI and AMX, not AVX2 or scalar."""
    if device.type != "cpu":
        return True
    isa = os.environ.get("DWQ_CPU_ISA", "") or (_cpu_isas() or ("",))[-1]
    return isa in ("avx512_vnni", "amx")


def qconv2d_residual(x_codes: torch.Tensor, x_scale: torch.Tensor, x_zero_point: torch.Tensor, x_bits: int,
                     w_packed: torch.Tensor, w_scale: torch.Tensor, kernel_size: IntPair, stride: IntPair,
                     padding: IntPair, affine_scale: Optional[torch.Tensor], affine_bias: Optional[torch.Tensor],
                     residual: torch.Tensor, relu: bool, out_scale: torch.Tensor, out_zero_point: torch.Tensor,
                     out_bits: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """A residual block's end: ``(y, codes)`` with ``y = relu?(qconv2d(...) + residual)`` (qconv2d's
    float output, the ReLU after the add; a new channels-last tensor, residual unchanged) and ``codes =
    quantize_act(y, out_scale, out_zero_point, out_bits)``, the next quantized layer's input.

    On the CPU kernel of the AVX-512 VNNI and AMX paths the conv's epilogue adds, ReLUs and quantizes
    each output tile while it is in cache (residual float32 channels-last of the output's shape; no
    autograd recording); elsewhere ``qconv2d`` then ``add_relu_quantize_`` (``add_`` and
    ``quantize_act`` without the ReLU): the same values. (On the AVX2 path the fused epilogue took
    2-2.5x the composed ops' time on ResNet-50's block ends, and the whole model 1.18x: measured on a
    2-core AVX2-only host, 2026-12-06.) NaN in y is an error, as in quantize_act.
    """
    ks, st, pd = _qgemm._pair(kernel_size, "kernel_size"), _qgemm._pair(stride, "stride"), _qgemm._pair(padding,
                                                                                                      "padding")
    x_bits = _qgemm._check_bits(x_bits, "x_bits")
    check_relu("qconv2d_residual", relu)
    _qgemm._need_ext("qconv2d_residual")
    check_tensors("qconv2d_residual", x_codes=x_codes, x_scale=x_scale, x_zero_point=x_zero_point, w_packed=w_packed,
                  w_scale=w_scale, residual=residual, out_scale=out_scale, out_zero_point=out_zero_point)
    if residual.dtype != torch.float32:  # (the composed path took float64 and int32, the sum rounded in them)
        raise ValueError(f"qconv2d_residual: residual must be a float32 tensor, got {residual.dtype}")
    if (has_kernel("qconv2d_residual", x_codes.device.type) and _fused_epilogue_pays(x_codes.device)
            and residual.device == x_codes.device and residual.dim() == 4
            and residual.is_contiguous(memory_format=torch.channels_last)
            and not (torch.is_grad_enabled() and residual.requires_grad)):
        return torch.ops.dwq.qconv2d_residual.default(x_codes, x_scale, x_zero_point, x_bits, w_packed, w_scale, ks, st,
                                                      pd, affine_scale, affine_bias, residual, relu, out_scale,
                                                      out_zero_point, out_bits)
    y = qconv2d(x_codes, x_scale, x_zero_point, x_bits, w_packed, w_scale, ks, st, pd, affine_scale, affine_bias)
    if residual.shape != y.shape:  # (no broadcast: the kernel's rule)
        raise ValueError(f"qconv2d_residual: residual must have the output's shape {tuple(y.shape)}, got "
                         f"{tuple(residual.shape)}")
    if relu:
        return y, add_relu_quantize_(y, residual, out_scale, out_zero_point, out_bits)
    return y, quantize_act(y.add_(residual), out_scale, out_zero_point, out_bits)


if HAS_EXT:

    @torch.library.register_fake("dwq::add_relu_")
    def _(x, other):
        _fake_same_device("add_relu_", x, "x", other=other)
        torch._check(x.dtype == torch.float32 and other.dtype == torch.float32,
                     lambda: f"dwq.add_relu_: x and other must be float32, got {x.dtype} and {other.dtype}")
        torch._check(x.shape == other.shape,
                     lambda: f"dwq.add_relu_: other must have x's shape {tuple(x.shape)}, got {tuple(other.shape)}")
        torch._check(x.stride() == other.stride(),
                     lambda: f"dwq.add_relu_: other must be laid out like x (strides {x.stride()} and {other.stride()})")

    @torch.library.register_fake("dwq::add_relu_quantize_")
    def _(x, other, scale, zero_point, bits):
        _fake_same_device("add_relu_quantize_", x, "x", other=other, scale=scale, zero_point=zero_point)
        torch._check(x.dtype == torch.float32 and other.dtype == torch.float32,
                     lambda: f"dwq.add_relu_quantize_: x and other must be float32, got {x.dtype} and {other.dtype}")
        torch._check(x.shape == other.shape and x.stride() == other.stride(),
                     lambda: "dwq.add_relu_quantize_: other must have x's shape and strides")
        torch._check(2 <= bits <= 16, lambda: f"dwq.add_relu_quantize_: bits must be in 2..16, got {bits}")
        torch._check(scale.numel() == 1 and zero_point.numel() == 1,
                     lambda: "dwq.add_relu_quantize_: scale and zero_point must have 1 element (per tensor)")
        return torch.empty_like(x, dtype=codes_dtype(bits))

    @torch.library.register_fake("dwq::add_affine_quantize_")
    def _(x, other, scale, bias, relu, out_scale, out_zero_point, bits):
        _fake_same_device("add_affine_quantize_", x, "x", other=other, scale=scale, bias=bias, out_scale=out_scale,
                          out_zero_point=out_zero_point)
        torch._check(x.dtype == torch.float32 and other.dtype == torch.float32 and x.dim() >= 2,
                     lambda: "dwq.add_affine_quantize_: x and other must be float32 [B, C, ...]")
        torch._check(x.shape == other.shape and x.stride() == other.stride(),
                     lambda: "dwq.add_affine_quantize_: other must have x's shape and strides")
        torch._check(scale.shape == (x.shape[1],) and bias.shape == (x.shape[1],),
                     lambda: "dwq.add_affine_quantize_: scale and bias must have one entry per channel of x")
        torch._check(2 <= bits <= 16, lambda: f"dwq.add_affine_quantize_: bits must be in 2..16, got {bits}")
        torch._check(out_scale.numel() == 1 and out_zero_point.numel() == 1,
                     lambda: "dwq.add_affine_quantize_: out_scale and out_zero_point must have 1 element (per tensor)")
        return torch.empty_like(x, dtype=codes_dtype(bits))

    @torch.library.register_fake("dwq::qconv2d_residual")
    def _(x_codes, x_scale, x_zero_point, x_bits, w_packed, w_scale, kernel_size, stride, padding, affine_scale,
          affine_bias, residual, relu, out_scale, out_zero_point, out_bits):
        name = "qconv2d_residual"
        _fake_same_device(name, x_codes, "x_codes", x_scale=x_scale, x_zero_point=x_zero_point, w_packed=w_packed,
                          w_scale=w_scale, affine_scale=affine_scale, affine_bias=affine_bias, residual=residual,
                          out_scale=out_scale, out_zero_point=out_zero_point)
        torch._check(2 <= x_bits <= 16, lambda: f"{name}: x_bits must be in 2..16, got {x_bits}")
        _qgemm._fake_codes(name, x_codes, 4)
        _qgemm._fake_packed(name, w_packed)
        dtype = _qgemm._fake_out_dtype(name, out_scale, out_zero_point, out_bits)
        B, OH, OW, N = _qgemm._fake_conv_shape(name, x_codes, w_packed, kernel_size, stride, padding)
        torch._check(residual.dtype == torch.float32 and residual.shape == (B, N, OH, OW),
                     lambda: f"dwq.{name}: residual must be float32 of the output's shape {(B, N, OH, OW)}")
        y = x_codes.new_empty((B, OH, OW, N), dtype=torch.float32).permute(0, 3, 1, 2)
        return y, x_codes.new_empty((B, OH, OW, N), dtype=dtype).permute(0, 3, 1, 2)
