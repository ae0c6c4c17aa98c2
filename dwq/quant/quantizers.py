"""Quantizer modules: per-output-channel weights and per-tensor activations.

Both take the bit width at call time, so one module serves every precision of a
random-precision model.
"""
from typing import Iterable, Optional

import torch
from torch import nn

from dwq.ops import quantizer_fused as fused
from dwq.ops.fake_quant import check_no_nan
from dwq.quant.fake_quant import fake_quantize, fake_quantize_float_zp
from dwq.quant.precision import check_bits, normalize_set
from dwq.quant.qparams import check_zero_point_mode, choose_qparams


def quantize_with(x, scale, zp, bits, axis, mode):
    if mode == "int":
        return fake_quantize(x, scale, zp, bits, axis)
    return fake_quantize_float_zp(x, scale, zp, bits, axis)


class WeightQuantizer(nn.Module):
    """Per-output-channel asymmetric weight quantizer; the range is the min/max of the current
    weights at every call (no state)."""

    def __init__(self, axis: int = 0, zero_point: str = "int"):
        super().__init__()
        self.axis = axis
        self.zero_point = check_zero_point_mode(zero_point)

    def qparams(self, w: torch.Tensor, bits: int):
        """(scale float32 [C], zero point int32 [C]) of ``w`` at ``bits`` (float [C] offsets in "float" mode)."""
        flat = w.detach().movedim(self.axis, 0).reshape(w.shape[self.axis], -1)
        mn, mx = torch.aminmax(flat, dim=1)
        return choose_qparams(mn, mx, bits, self.zero_point)

    def forward(self, w: torch.Tensor, bits: Optional[int]) -> torch.Tensor:
        if bits is None:
            return w
        if self.zero_point == "int" and self.axis == 0 and fused.available(w, "weight_fake_quantize"):
            # One pass (one launch on GPUs) for range, qparams and fake quant; same arithmetic as below.
            out = fused.weight_fake_quantize(w, check_bits(bits))
            check_no_nan(out, "cannot quantize: the observed range contains NaN (the tensor has NaN values)")
            return out
        scale, zp = self.qparams(w, bits)
        return quantize_with(w, scale, zp, bits, self.axis, self.zero_point)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, zero_point={self.zero_point}"


class ActQuantizer(nn.Module):
    """Per-tensor asymmetric activation quantizer with a running range per precision.

    Train mode quantizes with the batch's own min/max and updates the running range of the
    active precision as ``running = ema * running + (1 - ema) * batch`` (the reference code's
    0.1/0.9); the first batch of a precision initializes it. Eval mode uses the running range
    (the batch range if that precision never saw a training batch). ``shared_range=True`` keeps
    one range for all precisions, as the reference does.

    state_dict: ``running_min``, ``running_max`` (float32 [P], or [1] if shared) and
    ``initialized`` (bool, same shape), slot i belonging to ``precisions[i]``.
    """

    def __init__(
        self,
        precisions: Iterable,
        zero_point: str = "int",
        shared_range: bool = False,
        ema: float = 0.1,
    ):
        super().__init__()
        self.precisions = normalize_set(precisions)
        self.zero_point = check_zero_point_mode(zero_point)
        self.shared_range = bool(shared_range)
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema must be in [0, 1), got {ema}")
        self.ema = float(ema)
        slots = 1 if self.shared_range else len(self.precisions)
        self.register_buffer("running_min", torch.zeros(slots))
        self.register_buffer("running_max", torch.zeros(slots))
        self.register_buffer("initialized", torch.zeros(slots, dtype=torch.bool))

    def slot(self, precision) -> int:
        return 0 if self.shared_range else self.precisions.index(precision)

    @torch.no_grad()
    def set_range(self, min_val: float, max_val: float, precision=None) -> None:
        """Sets the running range of ``precision`` (normalized; None = every slot) and marks it seen."""
        if not min_val <= max_val:
            raise ValueError(f"set_range: min_val must be <= max_val, got {min_val} and {max_val}")
        slots = range(self.running_min.numel()) if precision is None else [self.slot(precision)]
        for i in slots:
            self.running_min[i] = min_val
            self.running_max[i] = max_val
            self.initialized[i] = True

    def forward(self, x: torch.Tensor, bits: Optional[int], precision=None) -> torch.Tensor:
        """Quantizes ``x`` at ``bits``; ``precision`` (normalized) picks the range slot."""
        if bits is None:
            return x
        check_bits(bits)
        i = self.slot(precision)
        if self.zero_point == "int" and fused.available(x, "act_qparams"):
            # One pass (one launch on GPUs, no host sync) for the range, EMA update and qparams.
            scale, zp = fused.act_qparams(x.detach(), self.running_min, self.running_max, self.initialized, i, bits,
                                          self.ema, self.training)
            check_no_nan(scale, "cannot quantize: the observed range contains NaN")
            return quantize_with(x, scale, zp, bits, None, self.zero_point)
        mn, mx = torch.aminmax(x.detach())
        mn, mx = mn.float(), mx.float()  # the range and its EMA are float32 whatever x's dtype
        if self.training:
            with torch.no_grad():
                first = ~self.initialized[i]
                new_min = torch.where(first, mn, self.ema * self.running_min[i] + (1 - self.ema) * mn)
                new_max = torch.where(first, mx, self.ema * self.running_max[i] + (1 - self.ema) * mx)
                self.running_min[i] = new_min
                self.running_max[i] = new_max
                self.initialized[i] = True
        else:
            # torch.where rather than an `if`: no host sync on accelerators.
            mn = torch.where(self.initialized[i], self.running_min[i], mn)
            mx = torch.where(self.initialized[i], self.running_max[i], mx)
        scale, zp = choose_qparams(mn.reshape(1), mx.reshape(1), bits, self.zero_point)
        return quantize_with(x, scale, zp, bits, None, self.zero_point)

    def extra_repr(self) -> str:
        return f"slots={self.running_min.numel()}, zero_point={self.zero_point}, ema={self.ema}"
