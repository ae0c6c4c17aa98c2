"""Pure-PyTorch twins of the dwq kernels: the definition the kernels are tested against, and the
implementation used where the extension is missing."""
from typing import Optional, Tuple

import torch


def _per_channel_view(t: torch.Tensor, x: torch.Tensor, axis: Optional[int]) -> torch.Tensor:
    if axis is None:
        return t.reshape(())
    shape = [1] * x.dim()
    shape[axis % x.dim()] = -1
    return t.reshape(shape)


def fake_quantize_ref(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    bits: int,
    axis: Optional[int] = None,
    return_codes: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``q = clamp(round(x / s) + z, 0, 2^b - 1)``, ``x_hat = (q - z) * s`` in x's dtype.

    Same argument contract as :func:`dwq.ops.fake_quantize`; codes are int32 (empty unless asked).
    float16/bfloat16 x is computed in float32 and rounded back, as the kernels do; float64 x in float64
    (the one dtype outside the float32 contract: near a tie its code can differ by one from float32's).
    """
    low = x.dtype in (torch.float16, torch.bfloat16)
    if low:  # (in half, x / s and the zero point lose bits: hundreds of codes per million differed)
        x_hat, codes = fake_quantize_ref(x.float(), scale, zero_point, bits, axis, return_codes)
        return x_hat.to(x.dtype), codes
    qmax = (1 << bits) - 1
    # (the scale in float32 first, as fake_quantize takes it: a float64 0.1 gave other codes than the op)
    s = _per_channel_view(scale.to(torch.float32), x, axis).to(x.dtype)
    z = _per_channel_view(zero_point, x, axis).to(x.dtype)
    q = torch.clamp(torch.round(x / s) + z, 0, qmax)
    x_hat = (q - z) * s
    codes = q.to(torch.int32) if return_codes else torch.empty(0, dtype=torch.int32, device=x.device)
    return x_hat, codes
