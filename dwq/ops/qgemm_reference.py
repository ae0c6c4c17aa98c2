"""Pure-PyTorch references of the true-integer ops (``dwq.ops.qgemm``): int64 accumulators and a
float32 epilogue computed in the same order as the kernels, so integer results match exactly and
float results to float rounding. They take unpacked weight codes (the packed blob is opaque).

Contract (DESIGN.md): codes ``q`` in ``0..2^b-1``, integer zero points, round half to even,
``acc[m, n] = sum_k (qx[m, k] - zx) * (qw[n, k] - zw[n])``, conv padding with the code ``zx``.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F


def _qmax(bits: int) -> int:
    return (1 << bits) - 1


def codes_dtype(bits: int) -> torch.dtype:
    """uint8 for bits <= 8, else int32: the dtype of codes produced by the ops."""
    return torch.uint8 if bits <= 8 else torch.int32


def quantize_act_ref(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, bits: int) -> torch.Tensor:
    """x float32 any shape, scale float32 [1], zero_point int32 [1] -> codes like x (uint8/int32)."""
    q = torch.round(x.float() / scale.float().reshape(())) + zero_point.reshape(()).float()
    return q.clamp(0, _qmax(bits)).to(codes_dtype(bits))


def channel_affine(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, relu: bool) -> torch.Tensor:
    """relu?(x * scale[c] + bias[c]) for x [B, C, ...], scale / bias [C]: the multiply and the add rounded
    separately (torch's mul then add), ReLU keeping NaN, as affine_quantize_act computes it."""
    shape = [1, -1] + [1] * (x.dim() - 2)
    y = x.float() * scale.float().reshape(shape) + bias.float().reshape(shape)
    return torch.relu_(y) if relu else y


def affine_quantize_act_ref(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, relu: bool,
                            out_scale: torch.Tensor, out_zero_point: torch.Tensor, bits: int) -> torch.Tensor:
    """x float32 [B, C, ...], scale / bias float32 [C] -> codes of channel_affine(x, ...) like x."""
    return quantize_act_ref(channel_affine(x, scale, bias, relu), out_scale, out_zero_point, bits)


def qgemm_acc_ref(x_codes: torch.Tensor, x_zero_point: torch.Tensor, w_codes: torch.Tensor,
                  w_zero_point: torch.Tensor) -> torch.Tensor:
    """x_codes [M, K], w_codes [N, K], zero points [1] / [N] -> int64 [M, N] exact accumulators."""
    xs = x_codes.long() - x_zero_point.long().reshape(())
    ws = w_codes.long() - w_zero_point.long().reshape(-1, 1)
    return xs @ ws.t()  # int64 matmul: exact (wraps only beyond 2^63, far above K * 65535^2)


def epilogue_ref(acc: torch.Tensor, x_scale: torch.Tensor, w_scale: torch.Tensor, channel_dim: int,
                 affine_scale: Optional[torch.Tensor] = None, affine_bias: Optional[torch.Tensor] = None,
                 relu: bool = False, out_scale: Optional[torch.Tensor] = None,
                 out_zero_point: Optional[torch.Tensor] = None, out_bits: int = 8) -> torch.Tensor:
    """Float32 epilogue on int64 accumulators, in the kernels' order:
    ``mult = (s_x * s_w) * a``; ``y = float32(acc) * mult + b``; ReLU; float32 output, or
    ``clamp(round(y / s') + z', 0, 2^b' - 1)`` codes when out_scale / out_zero_point are given."""
    shape = [1] * acc.dim()
    shape[channel_dim] = -1
    mult = w_scale.float() * x_scale.float().reshape(())
    if affine_scale is not None:
        mult = mult * affine_scale.float()
    y = acc.to(torch.float32) * mult.reshape(shape)
    if affine_bias is not None:
        y = y + affine_bias.float().reshape(shape)
    if relu:  # the kernels' y > 0 ? y : 0, which makes -0.0 (acc 0 times a negative scale) +0.0; torch.relu keeps it
        y = torch.where(y > 0, y, torch.zeros((), dtype=y.dtype, device=y.device))
    if out_scale is None:
        return y
    q = torch.round(y / out_scale.float().reshape(())) + out_zero_point.reshape(()).float()
    return q.clamp(0, _qmax(out_bits)).to(codes_dtype(out_bits))


def qlinear_ref(x_codes, x_scale, x_zero_point, w_codes, w_scale, w_zero_point, affine_scale=None,
                affine_bias=None, relu=False, out_scale=None, out_zero_point=None, out_bits=8):
    """Reference of ``dwq.ops.qlinear`` with unpacked ``w_codes [N, K]`` and ``w_zero_point [N]``."""
    acc = qgemm_acc_ref(x_codes, x_zero_point, w_codes, w_zero_point)
    return epilogue_ref(acc, x_scale, w_scale, 1, affine_scale, affine_bias, relu, out_scale, out_zero_point,
                        out_bits)


def qconv2d_acc_ref(x_codes: torch.Tensor, x_zero_point: torch.Tensor, w_codes: torch.Tensor,
                    w_zero_point: torch.Tensor, stride: Sequence[int] = (1, 1),
                    padding: Sequence[int] = (0, 0)) -> torch.Tensor:
    """x_codes [B, C, H, W], w_codes [O, C, kh, kw] -> int64 [B, O, OH, OW]; padding holds the code zx,
    i.e. contributes exactly zero."""
    sh, sw = stride
    ph, pw = padding
    O, C, kh, kw = w_codes.shape
    xs = x_codes.long() - x_zero_point.long().reshape(())
    xs = F.pad(xs, (pw, pw, ph, ph), value=0)
    ws = w_codes.long() - w_zero_point.long().reshape(-1, 1, 1, 1)
    B, _, Hp, Wp = xs.shape
    OH, OW = (Hp - kh) // sh + 1, (Wp - kw) // sw + 1
    acc = torch.zeros(B, O, OH, OW, dtype=torch.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = xs[:, :, ky:ky + sh * (OH - 1) + 1:sh, kx:kx + sw * (OW - 1) + 1:sw]  # [B, C, OH, OW]
            acc += torch.einsum("bchw,oc->bohw", patch, ws[:, :, ky, kx])
    return acc


def qconv2d_ref(x_codes, x_scale, x_zero_point, w_codes, w_scale, w_zero_point, stride=(1, 1), padding=(0, 0),
                affine_scale=None, affine_bias=None, relu=False, out_scale=None, out_zero_point=None, out_bits=8):
    """Reference of ``dwq.ops.qconv2d`` with unpacked ``w_codes [O, C, kh, kw]``; returns [B, O, OH, OW]."""
    acc = qconv2d_acc_ref(x_codes, x_zero_point, w_codes, w_zero_point, stride, padding)
    return epilogue_ref(acc, x_scale, w_scale, 1, affine_scale, affine_bias, relu, out_scale, out_zero_point,
                        out_bits)
