"""``dwq.ops.fake_quantize``: the fused quantize-dequantize op used by every quantized layer.

Backed by ``torch.ops.dwq.fake_quantize`` (C++ on CPU, CUDA on GPU) with a straight-through
gradient and a fake (meta) implementation so that it traces under ``torch.compile``.
"""
from typing import Optional, Tuple

import torch

from dwq._index import index_or_none, is_bool
from dwq.ops._lib import HAS_EXT, fake_same_device, has_kernel
from dwq.ops.reference import fake_quantize_ref


def check_value(bad: torch.Tensor, message: str) -> None:
    """Raises ValueError(message) if the 0-d bool ``bad`` is true: at once on CPU; on accelerators (and
    under torch.compile) through an asynchronous device assert, so that no host sync is paid."""
    if bad.device.type == "cpu" and not torch.compiler.is_compiling():
        if bool(bad):
            raise ValueError(message)
    else:
        torch._assert_async(~bad, message)


def check_no_nan(x: torch.Tensor, message: str) -> None:
    """``check_value`` of NaN anywhere in x."""
    check_value(torch.isnan(x).any(), message)


def check_float_x(x: torch.Tensor) -> None:
    """x of a fake quantization (either zero-point mode) is a floating-point tensor."""
    if not x.is_floating_point():
        raise ValueError(f"fake_quantize: x must be a floating-point tensor, got {x.dtype}")


def check_relu(op: str, relu) -> None:
    """``relu`` is a bool: the kernels took ``relu=1`` where the fallback of the same op refused it."""
    if not is_bool(relu):
        raise TypeError(f"{op}: relu must be a bool, got {relu!r}")


def check_channels(x: torch.Tensor, axis: Optional[int], scale: torch.Tensor, other: torch.Tensor,
                   other_name: str) -> Optional[int]:
    """``scale`` and ``other`` (the zero point or the float offset) have one entry per channel of
    ``x`` along ``axis`` (one per tensor with ``axis=None``). Returns ``axis`` as a Python int (the op's
    schema wants one, not a numpy or tensor one), or None."""
    if axis is not None:
        index = index_or_none(axis)
        if index is None:
            raise ValueError(f"fake_quantize: axis must be an int (a dimension of x) or None (per tensor), "
                             f"got {axis!r}")
        axis = index
    if axis is not None and not -x.dim() <= axis < x.dim():  # (x.shape[axis] raised a bare IndexError)
        raise ValueError(f"fake_quantize: axis={axis} is not a dimension of x, shape {list(x.shape)} "
                         f"(per channel needs -{x.dim()} <= axis < {x.dim()}; per tensor is axis=None)")
    channels = 1 if axis is None else x.shape[axis]
    if scale.numel() != channels or other.numel() != channels:
        where = "per tensor" if axis is None else f"x.shape[{axis}]"
        raise ValueError(f"fake_quantize: scale and {other_name} need {channels} entries ({where}), "
                         f"got {scale.numel()} and {other.numel()}")
    return axis


def check_op_bits(bits, name: str = "bits") -> int:
    """``bits`` as a Python int (numpy's and 0-d tensors' too, as dwq's other entry points take them);
    ValueError unless it is an int in 2..16. The ops' one check of a bit width."""
    b = index_or_none(bits)
    if b is None or not 2 <= b <= 16:
        raise ValueError(f"{name} must be an int in 2..16, got {bits!r}")
    return b


def check_tensors(op: str, **named) -> None:
    """TypeError naming the argument of ``op`` that is not a tensor (None, a list): the ops' own errors
    named neither ("tensor does not have a device", "'list' object has no attribute 'numel'")."""
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{op}: {name} must be a tensor, got {type(t).__name__}")


def _check(x, scale, zero_point, bits, axis):
    """(axis, bits as a Python int) after the checks of every argument."""
    b = check_op_bits(bits, "fake_quantize: bits")
    check_float_x(x)
    check_tensors("fake_quantize", scale=scale, zero_point=zero_point)
    if zero_point.is_floating_point() or zero_point.is_complex() or zero_point.dtype == torch.bool:
        raise ValueError(f"fake_quantize: zero_point must be an integer tensor (codes), got {zero_point.dtype}")
    return check_channels(x, axis, scale, zero_point, "zero_point"), b


def _check_float32_scale(scale: torch.Tensor) -> None:
    # The kernels compute with the float32 scale: a float64 1e-50 became 0 and the op said "got 0"
    flat = scale.reshape(-1)
    s32 = flat.to(torch.float32)
    for i in ((s32 <= 0) | ~torch.isfinite(s32)).nonzero().flatten()[:1].tolist():
        raise ValueError(f"fake_quantize: scale[{i}] = {flat[i].item()!r} ({scale.dtype}) must be finite and > 0 "
                         f"in float32, the scale's type in the kernels; got {s32[i].item()!r} there")


def fake_quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    bits: int,
    axis: Optional[int] = None,
    return_codes: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Quantize ``x`` to ``bits``-bit unsigned codes and back.

    x: float32/float64/float16/bfloat16, any shape and strides. float16/bfloat16 are read and
    written as they are, computed in float32 inside the kernel (exactly ``fake_quantize(x.float())``
    rounded back to x's dtype), so autocast keeps activations in half precision.
    scale: float32 [C], finite and > 0; zero_point: int32 [C], codes in 0..2^bits-1, where
    C = x.shape[axis] (per channel) or 1 with ``axis=None`` (per tensor); other values raise (on CUDA:
    a device-side assert, which needs no host sync).
    Returns ``(x_hat, codes)``: x_hat like x, ``s * (q - z)`` with
    ``q = clamp(round_half_even(x / s) + z, 0, 2^bits - 1)``; codes int32 like x when
    ``return_codes`` else an empty tensor; both in x's memory format (``torch.empty_like(x)``
    strides, e.g. channels-last stays channels-last). The gradient is straight-through (identity)
    to x. NaN in x is an error (on CUDA, as for scale and zero point, a device-side assert, which needs
    no host sync).
    """
    axis, bits = _check(x, scale, zero_point, bits, axis)
    if scale.dtype != torch.float32 and scale.device.type == "cpu" and not torch.compiler.is_compiling():
        _check_float32_scale(scale)
    scale = scale.to(device=x.device, dtype=torch.float32).reshape(-1)
    info = torch.iinfo(zero_point.dtype)
    if info.max > 2**31 - 1:  # saturate, not wrap: 2^32 + 3 must fail the code check, not be 3, and a uint32's
        # 2^32 - 1 not be -1. (torch has no clamp or comparison for uint32 / uint64: through int64, where a
        # uint64 from 2^63 up reads negative.)
        wide = zero_point.to(torch.int64)
        if info.min == 0:
            wide = torch.where(wide < 0, 2**31 - 1, wide)
        if zero_point.device.type == "cpu" and not torch.compiler.is_compiling():
            # name the value given, not the saturated 2^31 - 1 the kernel would see
            qmax = (1 << bits) - 1
            for i in ((wide < 0) | (wide > qmax)).reshape(-1).nonzero().flatten()[:1].tolist():
                raise ValueError(f"fake_quantize: zero_point[{i}] = {zero_point.reshape(-1)[i].item()} is not a "
                                 f"code of {bits} bits (0..{qmax})")
        zero_point = wide.clamp(-(2**31), 2**31 - 1)
    zero_point = zero_point.to(device=x.device, dtype=torch.int32).reshape(-1)
    # (A C++-only build has no CUDA kernel. Under torch.compile the op is an opaque call, the pure-PyTorch
    # twin a few pointwise ops that inductor fuses with x's producer: the same values, bit for bit.)
    if has_kernel("fake_quantize", x.device.type) and not torch.compiler.is_compiling():
        return torch.ops.dwq.fake_quantize(x, scale, zero_point, bits, axis, return_codes)
    return _FakeQuantRef.apply(x, scale, zero_point, bits, axis, return_codes)


def inductor_exact_division() -> bool:
    """Turns on inductor's correctly rounded float32 division (``eager_numerics.division_rounding``), which
    ``fake_quantize``'s x / s needs under torch.compile on GPUs: Triton's default division is approximate
    (``div.full``, within 2 ulp), so a compiled quantizer could pick the neighbouring code next to a tie.
    (Inductor's C++ for CPUs divides exactly either way.) A global inductor setting, as
    ``TORCHINDUCTOR_EMULATE_DIVISION_ROUNDING=1``; returns whether this torch has it."""
    import torch._inductor.config as inductor_config

    numerics = getattr(inductor_config, "eager_numerics", None)
    if not hasattr(numerics, "division_rounding"):
        return False
    numerics.division_rounding = True
    return True


def check_qparam_values(scale: torch.Tensor, zero_point: torch.Tensor, bits: int, op: str = "fake_quantize",
                        names: tuple = ("scale", "zero_point")) -> None:
    """The kernels' value checks (csrc/ops/fake_quant_checks.h), for the pure-PyTorch paths of ``op``
    (``names``: the op's names for the two arguments): without them a zero scale gave NaN and a zero
    point outside the codes a shifted grid, silently."""
    qmax = (1 << bits) - 1
    s_name, z_name = names
    bad_s, bad_z = ~(torch.isfinite(scale) & (scale > 0)), (zero_point < 0) | (zero_point > qmax)
    if scale.device.type == "cpu" and not torch.compiler.is_compiling():  # name the entry, as the kernels do
        for i in bad_s.nonzero().flatten()[:1].tolist():
            raise ValueError(f"{op}: {s_name}[{i}] must be finite and > 0, got {scale[i].item()}")
        for i in bad_z.nonzero().flatten()[:1].tolist():
            raise ValueError(f"{op}: {z_name}[{i}] = {zero_point[i].item()} is not a code of {bits} bits (0..{qmax})")
    check_value(bad_s.any() | bad_z.any(), f"{op}: {s_name} must be finite and > 0 and {z_name} a code of "
                                           f"{bits} bits (0..{qmax})")


class _FakeQuantRef(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale, zero_point, bits, axis, return_codes):
        check_qparam_values(scale, zero_point, bits)
        check_no_nan(x, "fake_quantize: x contains NaN; NaN has no quantized code")
        out, codes = fake_quantize_ref(x, scale, zero_point, bits, axis, return_codes)
        ctx.mark_non_differentiable(codes)
        return out, codes

    @staticmethod
    def backward(ctx, grad_out, grad_codes):
        return grad_out, None, None, None, None, None


if HAS_EXT:

    @torch.library.register_fake("dwq::fake_quantize")
    def _(x, scale, zero_point, bits, axis, return_codes):
        fake_same_device("fake_quantize", x, "x", scale=scale, zero_point=zero_point)
        torch._check(2 <= bits <= 16, lambda: f"fake_quantize: bits must be in 2..16, got {bits}")
        torch._check(scale.dim() == 1 and zero_point.dim() == 1, lambda: "scale and zero_point must be 1-D")
        torch._check(x.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16),
                     lambda: f"fake_quantize: x must be float32, float64, float16 or bfloat16, got {x.dtype}")
        # The kernels' rule (csrc/ops/fake_quant_checks.h): outputs in x's memory format.
        codes = torch.empty_like(x, dtype=torch.int32) if return_codes else x.new_empty((0,), dtype=torch.int32)
        return torch.empty_like(x), codes

    # The straight-through gradient is the op's own C++ Autograd kernel (csrc/ops/straight_through.cpp).
