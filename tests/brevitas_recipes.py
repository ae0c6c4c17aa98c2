"""Brevitas quantizers configured like dwq's, for tests that use Brevitas as the reference.

Weights: ``ShiftedUint8WeightPerChannelFloat`` with the bit width overridden. It is already dwq's
recipe: per-output-channel min/max of the current weights at every call
(``MinMaxStatsScaling`` -> ``AbsMinMax``: range ``|max - min(min, 0)|``), scale
``range / (2^b - 1)`` (``IntScaling``, unsigned, not narrow), integer zero point
``clamp(round(-min(min, 0) / s), 0, 2^b - 1)`` (``ShiftedMinUintQuant``: ``NegativeMinOrZero``
with ``quantize_zero_point=True``).

Activations: Brevitas's stock ``ShiftedUint8ActPerTensorFloat`` does *not* use the same
statistics (it takes the 0.001/99.999 percentiles for 300 steps, then turns scale and zero point
into learned parameters), so :func:`act_quant` rebuilds it from Brevitas's own building blocks:

* ``scaling_impl_type=STATS`` -> ``RuntimeStatsScaling`` with ``scaling_stats_op=MIN_MAX``
  (``AbsMinMax``): in train mode the scale comes from the batch's own ``max - min(min, 0)``; in
  eval mode from a running value updated as ``(1 - m) * running + m * batch`` (the first batch
  initializes it).
* ``zero_point_impl=ParameterFromRuntimeZeroPoint`` with ``NegativeMinOrZero`` and
  ``collect_stats_steps`` never reached: the zero point comes from the batch's
  ``min(min, 0)`` in train mode and from its running value (same update) in eval mode.

dwq's ``ActQuantizer`` keeps ``running = ema * running + (1 - ema) * batch`` of min and max, so
Brevitas momentum ``m = 1 - ema``; with ``ema = 0`` / ``m = 1`` both keep exactly the last training
batch's range, which makes eval mode comparable bit for bit.
"""
import functools

from brevitas.core.stats import NegativeMinOrZero
from brevitas.core.zero_point import ParameterFromRuntimeZeroPoint
from brevitas.inject.enum import ScalingImplType, StatsOp
from brevitas.quant.shifted_scaled_int import ShiftedUint8ActPerTensorFloat, ShiftedUint8WeightPerChannelFloat

# Brevitas builds the quantizer from class attributes; "never" stops it from freezing the
# runtime statistics into learned parameters.
NEVER = 2**62


@functools.lru_cache(maxsize=None)
def weight_quant(bits: int):
    """Per-output-channel asymmetric weight quantizer at ``bits`` (dwq's ``WeightQuantizer``)."""
    return type(f"ShiftedUint{bits}WeightPerChannelFloat", (ShiftedUint8WeightPerChannelFloat,), {"bit_width": bits})


@functools.lru_cache(maxsize=None)
def act_quant(bits: int, momentum: float = 1.0):
    """Per-tensor asymmetric activation quantizer at ``bits`` using the runtime min/max of the
    tensor in train mode and running values (``(1 - momentum) * old + momentum * new``) in eval
    mode; dwq's ``ActQuantizer(ema=1 - momentum)``."""
    return type(
        f"ShiftedUint{bits}ActPerTensorMinMax",
        (ShiftedUint8ActPerTensorFloat,),
        {
            "bit_width": bits,
            "scaling_impl_type": ScalingImplType.STATS,
            "scaling_stats_op": StatsOp.MIN_MAX,
            "scaling_stats_momentum": momentum,
            "zero_point_impl": ParameterFromRuntimeZeroPoint,
            "zero_point_stats_impl": NegativeMinOrZero,
            "zero_point_stats_momentum": momentum,
            "collect_stats_steps": NEVER,
        },
    )
