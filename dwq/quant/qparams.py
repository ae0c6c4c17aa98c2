"""Scale and zero point from an observed range (the arithmetic contract of DESIGN.md).

Arithmetic: the scale ``s``, the zero point ``z`` and the quotient ``x / s`` are float32 values as
torch computes them, not real numbers, and every consumer (fake quant, the integer kernels,
Brevitas) shares them. On an exact tie of real arithmetic the code can therefore differ by one:
at 3 bits, weights ``[-1, -0.5, 0]`` give ``s = float32(1/7) = 0.14285715`` (a little above 1/7),
``-0.5 / s = -3.4999998`` rounds to ``-3`` (real arithmetic: ``-3.5`` rounds half-to-even to
``-4``), so ``-0.5`` is reconstructed as ``-3s = -0.4286``, not ``-4s = -0.5714``.

Scale floor: ``s = max((max - min) / (2^b - 1), 1e-8)``. The floor applies to every range narrower
than ``1e-8·(2^b - 1)`` (3e-8 at 2 bits, 2.6e-6 at 8, 6.6e-4 at 16 bits), not only to empty
ranges: such a range is still covered (``s·(2^b - 1)`` is at least its width, so nothing clips),
but on a coarser grid than its width allows, e.g. ``[0, 1e-4]`` at 16 bits uses codes 0..10,000
of 65,535.
"""
from typing import Tuple

import torch

from dwq.quant.precision import check_bits

# Floor of the scale, as in the reference code: keeps all-zero tensors finite.
MIN_SCALE = 1e-8
ZERO_POINT_MODES = ("int", "float")


def check_zero_point_mode(mode: str) -> str:
    if mode not in ZERO_POINT_MODES:
        raise ValueError(f"zero_point must be one of {ZERO_POINT_MODES}, got {mode!r}")
    return mode


def _check_range(min_val: torch.Tensor, max_val: torch.Tensor, second: str = "max_val") -> None:
    """NaN and order checks of ``[min_val, max_val]``, or of ``(min_val, range_val)`` when
    ``second == "range_val"`` (then the range must be >= 0)."""
    for v, what in ((min_val, "min_val"), (max_val, second)):
        if not isinstance(v, torch.Tensor):  # (a float failed with "'float' object has no attribute 'shape'")
            raise TypeError(f"{what} must be a tensor (e.g. torch.tensor([{v!r}])), got {type(v).__name__}")
    if min_val.shape != max_val.shape:
        raise ValueError(f"min_val and {second} shapes differ: {tuple(min_val.shape)} vs {tuple(max_val.shape)}")
    bad = torch.isnan(min_val).any() | torch.isnan(max_val).any()
    if min_val.device.type == "cpu" and not torch.compiler.is_compiling():
        if bool(bad):
            raise ValueError("cannot quantize: the observed range contains NaN (the tensor has NaN values)")
        if second == "max_val" and bool((min_val > max_val).any()):
            raise ValueError("cannot quantize: min_val > max_val in the observed range")
        if second == "range_val" and bool((max_val < 0).any()):
            raise ValueError("cannot quantize: range_val < 0 in the running range")
    else:
        # No host sync on accelerators (and no graph break under torch.compile): the check fails
        # the next synchronizing call instead.
        torch._assert_async(~bad, "cannot quantize: the observed range contains NaN")


def choose_qparams(
    min_val: torch.Tensor, max_val: torch.Tensor, bits: int, zero_point: str = "int"
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point for codes 0..2^bits-1 covering ``[min_val, max_val]``.

    ``zero_point="int"`` (dwq's contract): the range is widened to include 0,
    ``s = (max - min) / (2^b - 1)`` (at least 1e-8: ranges narrower than ``1e-8·(2^b - 1)`` get the
    floor, see the module docstring), ``z = clamp(round(-min / s), 0, 2^b - 1)`` as int32, so 0 is
    exactly representable and an integer kernel computes the same values. All of it is float32
    arithmetic: on exact ties of real arithmetic a code can differ by one (module docstring).

    ``zero_point="float"`` (the reference code's formula, for reproducing its numbers): no
    widening, ``s = max((max - min) / (2^b - 1), 1e-8)`` and the returned "zero point" is the
    float ``min`` itself: ``x_hat = round(clamp((x - min) / s, 0, 2^b - 1)) * s + min``. Zero is
    then generally not representable, so such a model has no exact integer equivalent.
    Infinite ranges give an infinite scale, which the caller must reject.
    """
    bits = check_bits(bits)
    check_zero_point_mode(zero_point)
    _check_range(min_val, max_val)
    qmax = (1 << bits) - 1
    min_val = min_val.float()
    max_val = max_val.float()
    # Divide by a tensor on the range's device: ATen's CUDA kernel divides by a Python number as a
    # multiply by its reciprocal (one bit off), its CPU kernel exactly; a tensor divisor is an IEEE
    # division on both, so CPU, CUDA and the fused CUDA quantizer agree bit for bit.
    levels = torch.full_like(max_val, float(qmax))
    if zero_point == "float":
        return _float_qparams(min_val, max_val - min_val, qmax)
    min_val = torch.clamp(min_val, max=0.0)
    max_val = torch.clamp(max_val, min=0.0)
    scale = torch.clamp((max_val - min_val) / levels, min=MIN_SCALE)
    zp = torch.clamp(torch.round(-min_val / scale), 0, qmax).to(torch.int32)
    return scale, zp


def _float_qparams(min_val: torch.Tensor, range_val: torch.Tensor, qmax: int):
    return torch.clamp(range_val / torch.full_like(range_val, float(qmax)), min=MIN_SCALE), min_val


def qparams_from_range(min_val: torch.Tensor, range_val: torch.Tensor, bits: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The reference code's scale and zero point from its stored state: ``s = max(range / (2^b - 1), 1e-8)``
    and the float zero point ``min_val`` (``zero_point="float"``; float32 tensors of one shape).

    The reference keeps ``(min, range)``, not ``(min, max)``: in float32 ``(min + range) - min`` is not
    always ``range``, and a scale one ulp off moves inputs near a rounding tie to the neighbouring code.
    """
    bits = check_bits(bits)
    _check_range(min_val, range_val, "range_val")
    return _float_qparams(min_val.float(), range_val.float(), (1 << bits) - 1)
