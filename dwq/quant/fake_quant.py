"""Straight-through fake quantization at a given bit width, in both zero-point modes."""
from typing import Optional

import torch

from dwq.ops import fake_quantize as _fake_quantize_op
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
    the float ``offset`` is the range minimum. Straight-through gradient to x."""
    qmax = (1 << check_bits(bits)) - 1
    if axis is not None:
        shape = [1] * x.dim()
        shape[axis] = -1
        scale, offset = scale.reshape(shape), offset.reshape(shape)
    else:
        scale, offset = scale.reshape(()), offset.reshape(())
    if x.device.type == "cpu" and not torch.compiler.is_compiling():
        if torch.isnan(x).any():
            raise ValueError("fake_quantize: x contains NaN; NaN has no quantized code")
    else:  # no host sync on accelerators, no graph break under torch.compile
        torch._assert_async(~torch.isnan(x).any(), "fake_quantize: x contains NaN; NaN has no quantized code")
    return _FloatZeroPointSTE.apply(x, scale.to(x.dtype), offset.to(x.dtype), qmax)
