"""choose_qparams rounds a zero point ``-min / s`` that falls exactly on a half to even (torch.round, the
kernels' one rounding method, csrc/common/arith.h), as the fused act_qparams kernel does: ranges such as
[-2.5, 12.5] at 4 bits (s = 1, -min / s = 2.5) give z = 2, not 3, and an eval forward of a float64 x
(the pure-PyTorch path) quantizes as the fused float32 path does, beyond the range too."""
import pytest
import torch

from dwq.ops import HAS_EXT
from dwq.quant import ActQuantizer, WeightQuantizer
from dwq.quant.qparams import choose_qparams

# (min, max, bits, the zero point): s = 1 exactly, -min / s is k + 0.5
TIES = [(-2.5, 12.5, 4, 2), (-0.5, 14.5, 4, 0), (-4.5, 10.5, 4, 4), (-10.5, 244.5, 8, 10), (-0.5, 2.5, 2, 0)]


@pytest.mark.parametrize("lo, hi, bits, zp", TIES)
def test_a_zero_point_on_a_half_rounds_to_even(lo, hi, bits, zp):
    """choose_qparams and WeightQuantizer.qparams (a float64 weight's path) give the even zero point."""
    scale, z = choose_qparams(torch.tensor([lo]), torch.tensor([hi]), bits)
    assert scale.tolist() == [1.0] and z.tolist() == [zp], f"[{lo}, {hi}] at {bits} bits: z = {z.tolist()}, want {zp}"
    w = torch.tensor([[lo, hi, 0.0], [hi, 0.0, lo]], dtype=torch.float64)
    assert WeightQuantizer().qparams(w, bits)[1].tolist() == [zp, zp]


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C is not built (the fused act_qparams kernel)")
@pytest.mark.parametrize("lo, hi, bits, zp", TIES)
def test_the_fused_kernel_and_the_torch_path_agree_on_a_tied_zero_point(lo, hi, bits, zp):
    """act_qparams of the tracked range gives the same zero point, and an eval forward with that range
    quantizes a float32 x (fused) and a float64 x (pure PyTorch) to the same values: past the range the
    largest value reached, (2^b - 1 - z) * s, shows the zero point."""
    init = torch.ones(1, dtype=torch.bool)
    lo_t, hi_t = torch.tensor([lo]), torch.tensor([hi])
    _, z = torch.ops.dwq.act_qparams(torch.ones(3), lo_t, hi_t, init, 0, 0, bits, 0.1, False)
    assert z.tolist() == [zp]
    q = ActQuantizer([bits]).eval()
    q.set_range(lo, hi)
    x = torch.arange(lo - 3.0, hi + 3.0, 0.25)
    fused, torch_path = q(x, bits), q(x.double(), bits)
    assert torch.equal(torch_path, fused.double()), (
        f"[{lo}, {hi}] at {bits} bits: the float64 path differs at x = {x[torch_path != fused.double()].tolist()}")
