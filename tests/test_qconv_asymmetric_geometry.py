"""qconv2d_acc and its int64 reference with a different stride and padding along H and W (every other
conv test uses square ones, so a reference or kernel that swapped the two axes went unseen): both
pinned against torch's float64 conv2d of the zero-point-shifted codes (exact at these sizes)."""
import pytest
import torch
import torch.nn.functional as F

from dwq.ops._lib import HAS_EXT
from dwq.ops import qgemm_reference as ref
from kernel_data import rand_codes, rand_zp


def _float_conv(x, zx, w, zw, stride, padding):
    # padding holds the code zx: zero after the shift, as F.conv2d's zero padding
    xs = (x.long() - zx.long()).double()
    ws = (w.long() - zw.long().reshape(-1, 1, 1, 1)).double()
    return F.conv2d(xs, ws, stride=stride, padding=padding).round().long()


@pytest.mark.parametrize("stride, padding", [((1, 2), (0, 1)), ((2, 1), (2, 0)), ((3, 1), (1, 2))])
def test_reference_follows_torch_conv2d_with_asymmetric_geometry(stride, padding):
    g = torch.Generator().manual_seed(31)
    x, zx = rand_codes(g, (2, 3, 7, 6), 6, torch.uint8), rand_zp(g, 6)
    w, zw = rand_codes(g, (4, 3, 3, 2), 5, torch.int32), rand_zp(g, 5, (4,))
    want = _float_conv(x, zx, w, zw, stride, padding)
    got = ref.qconv2d_acc_ref(x, zx, w, zw, stride, padding)
    assert got.shape == want.shape and torch.equal(got, want)


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
@pytest.mark.parametrize("stride, padding", [((1, 2), (0, 1)), ((2, 1), (2, 0))])
def test_kernel_matches_the_reference_with_asymmetric_geometry(stride, padding):
    from dwq.ops import qgemm as q

    g = torch.Generator().manual_seed(32)
    x, zx = rand_codes(g, (2, 5, 8, 7), 8, torch.uint8), rand_zp(g, 8)
    w, zw = rand_codes(g, (6, 5, 3, 3), 8, torch.int32), rand_zp(g, 8, (6,))
    acc = q.qconv2d_acc(x, zx, 8, q.pack_conv_weight(w, zw, 8), 3, stride, padding)
    want = _float_conv(x, zx, w, zw, stride, padding)
    assert acc.shape == want.shape and torch.equal(acc, want)
    assert torch.equal(acc, ref.qconv2d_acc_ref(x, zx, w, zw, stride, padding))
