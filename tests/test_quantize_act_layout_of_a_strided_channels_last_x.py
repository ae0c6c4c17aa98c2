"""dwq::quantize_act on an x that is neither dense nor contiguous but whose layout torch reads as
channels-last (a slice of a channels-last tensor): the kernel reads a contiguous copy of x, so its codes
come out in NCHW order, while the result has x's suggested memory format (channels-last, as
at::empty_like makes it). The codes must be copied into it, not written in the copy's order: each code
at its own index, the pure-PyTorch reference's values bit for bit."""
import pytest
import torch

from dwq.ops import HAS_EXT

if not HAS_EXT:
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops.qgemm_reference import quantize_act_ref  # noqa: E402

I32 = torch.int32
CL = torch.channels_last


def _layouts(g):
    base = torch.randn(2, 6, 5, 8, generator=g).contiguous(memory_format=CL)
    return {"w sliced": base[:, :, :, ::2], "c sliced": base[:, ::2], "h and w sliced": base[:, 1:, 1::2, :7]}


@pytest.mark.parametrize("bits", [4, 8, 12])
def test_codes_land_at_their_own_index(isa, bits):
    g = torch.Generator().manual_seed(9)
    s, z = torch.tensor([0.05]), torch.tensor([(1 << bits) // 3], dtype=I32)
    for name, x in _layouts(g).items():
        assert not x.is_contiguous() and not x.is_contiguous(memory_format=CL)
        assert torch.empty_like(x).is_contiguous(memory_format=CL), name  # (so the kernel's copy is NCHW: another layout)
        out = q.quantize_act(x, s, z, bits)
        ref = quantize_act_ref(x, s, z, bits)
        assert out.dtype == ref.dtype and out.shape == x.shape, name
        assert torch.equal(out, ref), (name, isa)
        assert out.stride() == torch.empty_like(x).stride(), name  # x's (suggested) memory format
