"""dwq::act_qparams in eval mode on an empty x with no range tracked (neither the slot nor the observed
one): there is no range to quantize with, so the op returns a NaN scale (zero point 0), which the
Python side raises on, as the CUDA kernel does (n == 0 gives a NaN range there). The CPU kernel's empty
min/max (+inf, -inf) must not reach qparams_of_range, where they would clamp to [0, 0] and come back
as the silent scale 1e-8."""
import math

import pytest
import torch

from dwq.ops import HAS_EXT

if not HAS_EXT:
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)


@pytest.mark.parametrize("shape", [(0,), (0, 8), (2, 0, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_an_empty_x_without_a_tracked_range_gives_a_nan_scale(shape, dtype):
    rmin, rmax = torch.full((3,), -1.0), torch.full((3,), 2.0)
    init = torch.zeros(3, dtype=torch.bool)
    s, z = torch.ops.dwq.act_qparams(torch.empty(shape, dtype=dtype), rmin, rmax, init, 1, 2, 4, 0.1, False)
    assert s.dtype == torch.float32 and s.shape == (1,) and math.isnan(s.item())
    assert z.dtype == torch.int32 and z.item() == 0
    # eval mode writes nothing
    assert not init.any() and torch.equal(rmin, torch.full((3,), -1.0)) and torch.equal(rmax, torch.full((3,), 2.0))


def test_an_empty_x_with_only_the_observed_range_tracked_uses_it():
    rmin, rmax = torch.zeros(3), torch.zeros(3)
    init = torch.zeros(3, dtype=torch.bool)
    rmin[2], rmax[2], init[2] = -1.0, 2.0, True
    s, z = torch.ops.dwq.act_qparams(torch.empty(0, 4), rmin, rmax, init, 1, 2, 4, 0.1, False)
    assert s.item() == pytest.approx(3.0 / 15) and z.item() == 5
