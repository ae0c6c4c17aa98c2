"""The range kernels behind dwq::act_qparams (csrc/cpu/float_kernels.inc.h's range_of, per ISA path) keep
independent running minima, maxima and NaN flags in several vector accumulators, then reduce them: an
extreme or a NaN at any position (any lane of any accumulator in the vector loop, or the scalar tail)
must reach the batch's range, and a batch of one sign must give its own bounds, not 0 (an accumulator
started at 0 instead of -inf / +inf). test_range_kernels_read_the_last_element checks the last element
only; here every position of a tensor of two 64-element vector steps and a tail is tried."""
import pytest
import torch

from dwq.ops import HAS_EXT

if not HAS_EXT:
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

N = 2 * 64 + 5  # two AVX-512 steps of 4 accumulators x 16 lanes (four AVX2 steps), and a tail


def _range(x):
    """The batch range act_qparams reads back into the running buffers of a first batch, and its scale."""
    rmin, rmax, init = torch.zeros(1), torch.zeros(1), torch.zeros(1, dtype=torch.bool)
    s, _ = torch.ops.dwq.act_qparams(x, rmin, rmax, init, 0, 0, 4, 0.9, True)
    return rmin.item(), rmax.item(), s.item()


@pytest.mark.parametrize("sign", [-1.0, 1.0], ids=["negative", "positive"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_an_extreme_at_any_position_is_the_batch_bound(isa, dtype, sign):
    """Values of one sign in [1, 2) (times sign); at each position in turn a value above or below all the
    others: the range is exactly (min, max) of x, bit for bit."""
    g = torch.Generator().manual_seed(7)
    base = ((torch.rand(N, generator=g) + 1) * sign).to(dtype)
    for i in range(N):
        for extreme in (0.5 * sign, 4.0 * sign):
            x = base.clone()
            x[i] = extreme
            want = (x.float().min().item(), x.float().max().item())
            got = _range(x)[:2]
            assert got == want, f"{isa} {dtype}: {extreme} at index {i} of {N}: range {got} instead of {want}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_a_nan_at_any_position_is_seen(isa, dtype):
    """A NaN at each position in turn gives the NaN scale (an error on the Python side)."""
    g = torch.Generator().manual_seed(8)
    base = (torch.rand(N, generator=g) * 2 - 1).to(dtype)
    for i in range(N):
        x = base.clone()
        x[i] = float("nan")
        s = _range(x)[2]
        assert s != s, f"{isa} {dtype}: NaN at index {i} of {N} not seen (scale {s})"
