"""Quantized conv and linear layers: ``nn.Conv2d``/``nn.Linear`` plus a precision-switchable
quantizer for the input (per tensor) and the weight (per output channel).

The order of a forward is fixed, as in Brevitas: quantize input, quantize weight, run the
float op on the fake-quantized values (bias stays float: the integer path adds it in the
epilogue). At full precision (``None`` in the set) the layer computes exactly what the torch layer
does; in train mode its input range is still tracked, so that precisions never trained have a
range at eval (see ``dwq.quant.ActQuantizer``).
"""
from typing import Iterable

import torch
from torch import nn
from torch.nn import functional as F

from torch.nn.modules import module as _module

from dwq.nn.control import PrecisionModule
from dwq.quant.precision import precision_name
from dwq.quant.quantizers import ActQuantizer, WeightQuantizer, autocast_dtype, check_flag


def _call(m: nn.Module, *args):
    """``m(*args)``, straight to ``m.forward`` where ``Module.__call__`` would do nothing else: no hook
    on ``m`` nor a global one, no ``m.compile()``, no ``torch.jit.trace``. Its two Python frames took
    1.2 us per call on a 2-core Xeon, twice per quantized layer at every forward (issue 10: a GPU's
    eager eval forward is bound by the host); these checks take a third of that."""
    if (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
            or _module._global_forward_hooks or _module._global_forward_pre_hooks
            or _module._global_backward_hooks or _module._global_backward_pre_hooks
            or m._compiled_call_impl is not None or torch._C._get_tracing_state()):
        return m(*args)
    return m.forward(*args)


class _QuantMixin(PrecisionModule):
    def _init_quant(self, precisions: Iterable, zero_point: str, shared_act_range: bool, act_ema: float,
                    quantize_input: bool, device=None):
        self._init_precision(precisions)
        self.quantize_input = check_flag(quantize_input, f"{type(self).__name__}: quantize_input")
        self.weight_quant = WeightQuantizer(axis=0, zero_point=zero_point)
        self.input_quant = ActQuantizer(self.precisions, zero_point=zero_point, shared_range=shared_act_range,
                                        ema=act_ema)
        if device is not None:
            # torch's constructor put only the weight and bias on ``device``; the ranges must be beside them
            # (a forward mixes them) and the set should be too. (``dtype`` is not applied: ranges stay float32.)
            self.precision_set = self.precision_set.to(device)
            self.input_quant.to(device)

    def _reset_range(self) -> None:
        # (torch's constructor calls reset_parameters before _init_quant made the quantizer)
        if "input_quant" in self._modules:
            self.input_quant.reset_parameters()

    @property
    def w_bits(self):
        return None if self.precision is None else self.precision[0]

    @property
    def a_bits(self):
        return None if self.precision is None else self.precision[1]

    # These two run at every forward of every layer (host time, issue 10): the precision is read once, not
    # through the properties, and the quantizers from _modules, where Module.__getattr__ finds them after
    # trying _parameters and _buffers (0.7 us each on a 2-core Xeon).
    def quant_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.quantize_input:
            return x
        p = self._precision
        return _call(self._modules["input_quant"], x, None if p is None else p[1], p)

    def quant_weight(self) -> torch.Tensor:
        p = self._precision
        w = self.weight
        if p is None:
            return _call(self._modules["weight_quant"], w, None)
        # Under autocast the quantized weight comes in the dtype the conv/linear casts it to.
        return _call(self._modules["weight_quant"], w, p[0], autocast_dtype(w))


class QConv2d(nn.Conv2d, _QuantMixin):
    """``nn.Conv2d`` whose input and weight are fake-quantized at the current precision.

    Extra keyword arguments: ``precisions`` (the precision set), ``zero_point`` ("int", dwq's
    integer-exact contract, or "float", the reference code's formula), ``shared_act_range``
    (one activation range for all precisions, as the reference), ``act_ema`` (weight of the old
    running range), ``quantize_input`` (False when the input is already quantized upstream).

    >>> conv = QConv2d(3, 8, 3, padding=1, precisions=[4, 8, None])
    >>> conv.set_precision(4); y = conv(torch.randn(2, 3, 16, 16))

    state_dict: ``weight``, ``bias``, ``precision_set``, ``input_quant.running_min``,
    ``input_quant.running_max`` (``running_range`` with ``zero_point="float"``), ``input_quant.initialized``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", *, precisions, zero_point="int", shared_act_range=False,
                 act_ema=0.1, quantize_input=True, device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)
        self._init_quant(precisions, zero_point, shared_act_range, act_ema, quantize_input, device)

    def reset_parameters(self) -> None:
        """Torch's initialization of weight and bias, and no activation range tracked."""
        super().reset_parameters()
        self._reset_range()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.quant_input(x), self.quant_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", precision={precision_name(self.precision)}"


class QLinear(nn.Linear, _QuantMixin):
    """``nn.Linear`` whose input and weight are fake-quantized at the current precision.
    Same extra keyword arguments and state_dict as :class:`QConv2d`."""

    def __init__(self, in_features, out_features, bias=True, *, precisions, zero_point="int",
                 shared_act_range=False, act_ema=0.1, quantize_input=True, device=None, dtype=None):
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self._init_quant(precisions, zero_point, shared_act_range, act_ema, quantize_input, device)

    def reset_parameters(self) -> None:
        """Torch's initialization of weight and bias, and no activation range tracked."""
        super().reset_parameters()
        self._reset_range()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.quant_input(x), self.quant_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", precision={precision_name(self.precision)}"
