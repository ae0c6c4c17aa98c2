"""Integer operands of a fake-quantized layer at one precision: the codes, scales and zero points its
quantizers use in eval mode (DESIGN.md's arithmetic contract), and a batch norm as the per-channel
affine of the kernels' epilogue.

These are the only place where deploy reads a layer's quantizers, so the integer model and the
fake-quant model cannot drift apart: the tests of the contract call them too.
"""
from typing import Tuple

import torch
from torch import nn

from dwq._errors import first_line
from dwq.ops import fake_quantize
from dwq.quant import normalize_precision, precision_name

__all__ = ["ConversionError", "act_qparams", "weight_codes", "bn_affine"]


class ConversionError(ValueError):
    """A model, layer or precision that ``dwq.deploy.convert`` cannot turn into integer arithmetic;
    the message names the layer."""


def act_qparams(layer: nn.Module, precision, name: str = "layer") -> Tuple[torch.Tensor, torch.Tensor, int]:
    """``(scale float32 [1], zero_point int32 [1], a_bits)`` of ``layer``'s input quantizer at
    ``precision`` in eval mode (``ActQuantizer.eval_qparams``): the running range of that precision's
    slot, or the range observed over all training batches if that precision never saw one.

    ConversionError if the layer uses the reference's float zero point (no integer equivalent),
    never saw a training batch at all (eval mode would then quantize every batch with its own range,
    which a static integer model cannot reproduce) or has a NaN / infinite range.
    """
    p = normalize_precision(precision)
    q = layer.input_quant
    if q.zero_point != "int":
        raise ConversionError(f"{name}: zero_point={q.zero_point!r} (the reference code's quantizer) has no exact "
                              f"integer equivalent; only zero_point='int' models convert")
    try:
        qp = q.eval_qparams(p, p[1])
        if qp is not None and not bool(torch.isfinite(qp[0]).all()):  # (an infinite range gives no error)
            raise ValueError(f"an infinite range gives the scale {qp[0].item()}")
    except ValueError as e:  # a NaN / infinite range (a diverged run): the quantizer's message names no layer
        raise ConversionError(f"{name}: its activation range at precision {precision_name(p)} cannot be "
                              f"quantized ({first_line(e)})") from None
    if qp is None:
        raise ConversionError(f"{name}: no activation range at precision {precision_name(p)} (the layer never saw a "
                              f"training batch); run a few train-mode batches first")
    scale, zp = qp
    return scale, zp, p[1]


def weight_codes(layer: nn.Module, precision, name: str = "layer") -> Tuple[torch.Tensor, torch.Tensor,
                                                                          torch.Tensor, int]:
    """``(codes int32 like layer.weight, scale float32 [O], zero_point int32 [O], w_bits)``: the
    per-output-channel codes the layer's weight quantizer uses at ``precision``. ConversionError
    naming ``name`` for weights that cannot be quantized (NaN or infinite values)."""
    bits = normalize_precision(precision)[0]
    w = layer.weight.detach()
    try:
        scale, zp = layer.weight_quant.qparams(w, bits)
        _, codes = fake_quantize(w, scale, zp, bits, axis=0, return_codes=True)
    except (ValueError, RuntimeError) as e:  # (the quantizer's / the op's message names no layer)
        raise ConversionError(f"{name}: its weights cannot be quantized at {bits} bits ({first_line(e)})") from None
    return codes, scale, zp, bits


def bn_affine(bn: nn.BatchNorm2d, name: str = "bn") -> Tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode batch norm as ``y = a * x + b`` per channel: ``a = gamma / sqrt(var + eps)``,
    ``b = beta - mean * a`` (float32 [C] each)."""
    # (the buffers decide, as in torch's eval forward: a BN whose track_running_stats was turned off after
    # construction still normalizes with them, and was refused)
    if bn.running_mean is None or bn.running_var is None:
        raise ConversionError(f"{name}: a batch norm without running statistics normalizes with each batch's own "
                              f"statistics in eval mode; it has no fixed per-channel affine")
    a = torch.rsqrt(bn.running_var.float() + bn.eps)
    if bn.weight is not None:
        a = a * bn.weight.detach().float()
    b = -bn.running_mean.float() * a
    if bn.bias is not None:
        b = b + bn.bias.detach().float()
    return a, b
