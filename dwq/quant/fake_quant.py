"""Straight-through fake quantization at a given bit width, in both zero-point modes."""
from typing import Optional

import torch

from dwq.ops import fake_quantize as _fake_quantize_op
from dwq.ops.fake_quant import check_channels, check_float_x, check_no_nan, check_value
from dwq.quant.precision import check_bits


def fake_quantize(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int, axis: Optional[int] = None
) -> torch.Tensor:
    """``s * (clamp(round(x / s) + z, 0, 2^b - 1) - z)`` with an integer ``zero_point``
    (int32 [C]; ``scale`` float32 [C]; C = x.shape[axis], or 1 per tensor). Straight-through
    gradient to x, none to scale and zero point."""
    return _fake_quantize_op(x, scale, zero_point, check_bits(bits), axis)[0]


class _FloatZeroPointSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale, offset, qmax):
        return torch.round(torch.clamp((x - offset) / scale, 0, qmax)) * scale + offset

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None


def fake_quantize_float_zp(
    x: torch.Tensor, scale: torch.Tensor, offset: torch.Tensor, bits: int, axis: Optional[int] = None
) -> torch.Tensor:
    """The reference code's quantizer: ``round(clamp((x - min) / s, 0, 2^b - 1)) * s + min`` where
    the float ``offset`` is the range minimum, in float32 for float16/bfloat16 x (rounded back to x's
    dtype). Straight-through gradient to x. ``scale`` and ``offset`` are float [C] (C = x.shape[axis],
    or 1 per tensor). NaN in x, a scale that is not finite and > 0, or an offset that is not finite is
    an error (on accelerators an asynchronous device assert), as for :func:`fake_quantize`."""
    qmax = (1 << check_bits(bits)) - 1
    check_float_x(x)
    axis = check_channels(x, axis, scale, offset, "offset")
    if axis is not None:
        shape = [1] * x.dim()
        shape[axis] = -1
        scale, offset = scale.reshape(shape), offset.reshape(shape)
    else:
        scale, offset = scale.reshape(()), offset.reshape(())
    check_no_nan(x, "fake_quantize: x contains NaN; NaN has no quantized code")  # no host sync on GPUs
    # float32 arithmetic for float16/bfloat16 x, as the integer zero point's op does (in half, the 1e-8
    # minimum scale is 0 and a constant tensor came out NaN).
    low = x.dtype in (torch.float16, torch.bfloat16)
    xf = x.float() if low else x
    # checked in the type they compute in: a float64 scale of 1e-50 is 0 in float32 (NaN out), an offset
    # of 1e300 inf (inf out)
    scale, offset = scale.to(xf.dtype), offset.to(xf.dtype)
    check_value(~torch.isfinite(scale).all() | ~torch.isfinite(offset).all() | (scale <= 0).any(),
                f"fake_quantize: the scale and offset must be finite and the scale > 0 in {xf.dtype}, the type "
                f"they compute in (an infinite range, or one wider than it holds, has no quantization grid)")
    out = _FloatZeroPointSTE.apply(xf, scale, offset, qmax)
    return out.to(x.dtype) if low else out
