"""The range kernels (dwq::act_qparams's min/max pass, per ISA path: csrc/cpu/quantizer_fused.cpp
dispatching to float_kernels_*.cpp) read every element up to the last one: a batch whose minimum,
maximum or NaN sits in its last element (the vector loop's scalar tail, or the whole tensor for a
short one) gives the pure-PyTorch path's range, bit for bit. Random data rarely puts the extreme there,
so a kernel that stopped one element short passed the other tests."""
import pytest
import torch

from dwq.ops import HAS_EXT

if not HAS_EXT:
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import quantizer_fused as fused  # noqa: E402
from dwq.quant import ActQuantizer, normalize_precision  # noqa: E402

SIZES = (2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 129)


def _reference(x, p):
    q = ActQuantizer([4]).train()
    avail = fused.available
    try:
        fused.available = lambda *a: False
        return q(x, 4, p), q
    finally:
        fused.available = avail


@pytest.mark.parametrize("where", ["max", "min"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_an_extreme_in_the_last_element_is_seen(isa, dtype, where):
    g = torch.Generator().manual_seed(5)
    p = normalize_precision(4)
    for n in SIZES:
        x = (torch.rand(n, generator=g) * 2 - 1).to(dtype)
        x[-1] = 6.0 if where == "max" else -6.0
        q = ActQuantizer([4]).train()
        y = q(x, 4, p)
        ref_y, ref_q = _reference(x, p)
        assert torch.equal(y, ref_y), (isa, n)
        assert torch.equal(q.running_min, ref_q.running_min) and torch.equal(q.running_max, ref_q.running_max), (isa, n)
        bound = q.running_max[0] if where == "max" else q.running_min[0]
        assert bound.item() == x[-1].float().item(), (isa, n)
        # the op itself: the batch's range, read back from the running buffers of a first batch
        rmin, rmax, init = torch.zeros(2), torch.zeros(2), torch.zeros(2, dtype=torch.bool)
        torch.ops.dwq.act_qparams(x, rmin, rmax, init, 0, 1, 4, 0.9, True)
        assert rmin[0].item() == x.float().min().item() and rmax[0].item() == x.float().max().item(), (isa, n)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_a_nan_in_the_last_element_is_seen(isa, dtype):
    g = torch.Generator().manual_seed(6)
    p = normalize_precision(4)
    for n in SIZES:
        x = (torch.rand(n, generator=g) * 2 - 1).to(dtype)
        x[-1] = float("nan")
        with pytest.raises(ValueError, match="NaN"):
            ActQuantizer([4]).train()(x, 4, p)
        rmin, rmax, init = torch.zeros(2), torch.zeros(2), torch.zeros(2, dtype=torch.bool)
        s, _ = torch.ops.dwq.act_qparams(x, rmin, rmax, init, 0, 1, 4, 0.9, True)
        assert torch.isnan(s).all() and not init.any(), (isa, n)
