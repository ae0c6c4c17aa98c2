"""Integer convolutions of channels-last views whose pixels are not dense: a channel slice of a
wider channels-last tensor, or every other column of one (channel stride 1, pixel stride > C). The
im2col packer may copy a run of neighbouring pixels as one block only where pixels are C codes apart;
test_qconv.py's layouts are dense channels-last, NCHW, or an NCHW column slice (channel stride > 1),
so none of them has channel stride 1 with gaps between pixels."""

import pytest
import torch

from dwq.ops._lib import HAS_EXT

if not HAS_EXT:  # DWQ_REQUIRE_EXT=1 already turned a missing extension into an ImportError
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops import qgemm_reference as ref  # noqa: E402
from kernel_data import rand_codes, rand_zp  # noqa: E402


def _gapped_views(g, B, C, H, W, bits, dtype):
    """(name, x): channels-last views with channel stride 1 and pixel stride > C."""
    wide_c = rand_codes(g, (B, C + 3, H, W), bits, dtype).contiguous(memory_format=torch.channels_last)
    wide_w = rand_codes(g, (B, C, H, 2 * W), bits, dtype).contiguous(memory_format=torch.channels_last)
    return [("channel slice", wide_c[:, 1:C + 1]), ("every other column", wide_w[..., ::2])]


@pytest.mark.parametrize("xb, dtype", [(8, torch.uint8), (5, torch.uint8), (8, torch.int32), (12, torch.int32),
                                       (16, torch.int32)])
def test_gapped_channels_last_views_are_exact(isa, xb, dtype):
    g = torch.Generator().manual_seed(xb * 10 + (dtype == torch.uint8))
    for k, s, p, C in [(3, 1, 1, 4), (3, 2, 1, 5), (1, 1, 0, 8), (3, 1, 0, 3), (2, 1, 1, 16)]:
        B, H, W, O, wb = 2, 6, 7, 5, 8
        w = rand_codes(g, (O, C, k, k), wb, torch.int32)
        zx, zw = rand_zp(g, xb), rand_zp(g, wb, (O,))
        wp = q.pack_conv_weight(w, zw, wb)
        for name, x in _gapped_views(g, B, C, H, W, xb, dtype):
            assert x.stride(1) == 1 and x.stride(3) > C
            got = q.qconv2d_acc(x, zx, xb, wp, k, s, p)
            want = ref.qconv2d_acc_ref(x, zx, w, zw, (s, s), (p, p))
            assert torch.equal(got, want), (name, xb, dtype, k, s, p, C, isa)
