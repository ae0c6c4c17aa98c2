"""``add_relu_``: a ResNet block's residual add and its ReLU in one pass over memory (an integer
model's ``add`` step followed by ``relu``), where ``x.add_(other).relu_()`` reads and writes x twice;
``add_relu_quantize_``: the same, and the next quantized layer's input codes of the result in that
pass; ``add_affine_quantize_``: a pre-activation block's add (no ReLU) and the next block's batch norm,
ReLU and quantization in one pass. The values are torch's: ``torch.relu(x + other)``, NaN kept
(``aten::_add_relu_`` would make it 0 and hide a broken layer), ``x + other``, and ``quantize_act``'s
and ``affine_quantize_act``'s codes.
"""
import torch

from dwq.ops._lib import HAS_EXT, has_kernel
from dwq.ops._lib import fake_same_device as _fake_same_device
from dwq.ops.qgemm import affine_quantize_act, quantize_act
from dwq.ops.qgemm_reference import affine_quantize_act_ref, codes_dtype, quantize_act_ref

__all__ = ["add_relu_", "add_relu_quantize_", "add_affine_quantize_", "add_relu_ref", "add_relu_quantize_ref",
           "add_affine_quantize_ref"]


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
    the conditions of :func:`add_relu_`; elsewhere ``add_relu_`` then ``quantize_act``. NaN in the result is an
    error, as in quantize_act (x is updated first, as there).
    """
    if _kernel_takes(x, other) and has_kernel("add_relu_quantize_", x.device.type):
        return torch.ops.dwq.add_relu_quantize_.default(x, other, scale, zero_point, bits)
    return quantize_act(add_relu_(x, other), scale, zero_point, bits)


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
    then ``affine_quantize_act``. NaN in the affine's result is an error (x is updated first).
    """
    if _kernel_takes(x, other) and has_kernel("add_affine_quantize_", x.device.type):
        return torch.ops.dwq.add_affine_quantize_.default(x, other, scale, bias, relu, out_scale, out_zero_point, bits)
    return affine_quantize_act(x.add_(other), scale, bias, relu, out_scale, out_zero_point, bits)


def add_affine_quantize_ref(x, other, scale, bias, relu, out_scale, out_zero_point, bits):
    """The pure-PyTorch reference: (``x + other``, its ``affine_quantize_act_ref`` codes), new tensors."""
    y = x + other
    return y, affine_quantize_act_ref(y, scale, bias, relu, out_scale, out_zero_point, bits)


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
