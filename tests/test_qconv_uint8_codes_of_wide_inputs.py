"""uint8 activation codes declared at 9..16 bits (valid: every code 0..255 fits) through the conv path
that copies the input rows zero-point padded in two limb planes (stride 1, channels-last, 64 or 128
channels, wide rows): the high plane of the in-image pixels was never written, so the result read
what the reused per-thread buffer held (found by an audit; wrong on avx512_vnni, right elsewhere)."""
import pytest
import torch

from dwq import ops
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


@pytest.mark.parametrize("x_bits", [9, 16])
@pytest.mark.parametrize("channels", [64, 128])
def test_uint8_codes_at_wide_widths_match_the_reference_after_other_convs(isa, x_bits, channels):
    torch.set_num_threads(1)  # (one thread's buffer, reused by every call)
    g = torch.Generator().manual_seed(x_bits + channels)
    x = torch.randint(0, 256, (1, channels, 3, 16), generator=g, dtype=torch.uint8)
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randint(0, 256, (16, channels, 3, 3), generator=g, dtype=torch.uint8)
    zw = torch.randint(0, 256, (16,), generator=g, dtype=torch.int32)
    for zx in (0, 255):
        z = torch.tensor([zx], dtype=torch.int32)
        wp = ops.pack_conv_weight(w, zw, 8)
        want = ops.qconv2d_acc_ref(x, z, w, zw)
        # a conv of int32 codes at the top of the width first: it leaves high limbs in the buffer
        ops.qconv2d_acc(torch.full_like(x, 2**x_bits - 1, dtype=torch.int32), z, x_bits, wp, 3)
        got = ops.qconv2d_acc(x, z, x_bits, wp, 3)
        assert torch.equal(got, want), (isa, zx, (got - want).abs().max())
        assert torch.equal(ops.qconv2d_acc(x.int(), z, x_bits, wp, 3), want)
