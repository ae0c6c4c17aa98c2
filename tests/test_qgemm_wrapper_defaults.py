"""The documented defaults of the integer op wrappers: qlinear's and qconv2d's ``out_bits=8`` (uint8 codes of
the whole 0..255 range when only out_scale and out_zero_point are given), qconv2d's and qconv2d_acc's
``stride=1, padding=0`` and ``relu=False``: a call that leaves them out equals the reference called with
them spelled out, bit for bit."""
import pytest
import torch

from dwq.ops._lib import HAS_EXT

if not HAS_EXT:  # DWQ_REQUIRE_EXT=1 already turned a missing extension into an ImportError
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops import qgemm_reference as ref  # noqa: E402
from kernel_data import rand_codes, rand_zp  # noqa: E402

# out_zero_point 200 is a code of 8 bits only; a small out_scale spreads the codes over 0..255
OUT = (torch.tensor([0.02]), torch.tensor([200], dtype=torch.int32))


def _linear():
    g = torch.Generator().manual_seed(31)
    x = rand_codes(g, (6, 40), 8, torch.uint8)
    w = rand_codes(g, (5, 40), 8, torch.int32)
    zx, zw = rand_zp(g, 8), rand_zp(g, 8, (5,))
    return x, torch.tensor([0.03]), zx, w, torch.full((5,), 0.01), zw


def _conv():
    g = torch.Generator().manual_seed(32)
    x = rand_codes(g, (2, 3, 7, 6), 8, torch.uint8)
    w = rand_codes(g, (4, 3, 3, 3), 8, torch.int32)
    zx, zw = rand_zp(g, 8), rand_zp(g, 8, (4,))
    return x, torch.tensor([0.03]), zx, w, torch.full((4,), 0.01), zw


def test_qlinear_defaults_to_8_bit_codes_and_no_relu():
    """qlinear(..., out_scale=, out_zero_point=) gives uint8 codes at 8 bits (codes above 127 included), and
    without out_* the float output carries no ReLU."""
    x, sx, zx, w, sw, zw = _linear()
    wp = q.pack_weight(w, zw, 8)
    got = q.qlinear(x, sx, zx, 8, wp, sw, out_scale=OUT[0], out_zero_point=OUT[1])
    want = ref.qlinear_ref(x, sx, zx, w, sw, zw, relu=False, out_scale=OUT[0], out_zero_point=OUT[1], out_bits=8)
    assert got.dtype == torch.uint8 and int(got.max()) > 127, f"not 8-bit codes: {got.dtype}, max {int(got.max())}"
    assert torch.equal(got, want), "qlinear's default out_bits is not 8 (or its default relu not False)"
    y = q.qlinear(x, sx, zx, 8, wp, sw)
    assert bool((y < 0).any()) and torch.equal(y, ref.qlinear_ref(x, sx, zx, w, sw, zw)), "float output differs"


def test_qconv2d_defaults_to_stride_1_padding_0_8_bit_codes_and_no_relu():
    """qconv2d and qconv2d_acc without stride / padding / relu / out_bits are stride 1, padding 0, no ReLU
    and 8-bit codes: the [2, 4, 5, 4] output of a 3 x 3 kernel over 7 x 6."""
    x, sx, zx, w, sw, zw = _conv()
    wp = q.pack_conv_weight(w, zw, 8)
    acc = q.qconv2d_acc(x, zx, 8, wp, 3)
    assert acc.shape == (2, 4, 5, 4), f"qconv2d_acc's default geometry gave {tuple(acc.shape)}"
    assert torch.equal(acc, ref.qconv2d_acc_ref(x, zx, w, zw, (1, 1), (0, 0)))
    y = q.qconv2d(x, sx, zx, 8, wp, sw, 3)
    assert bool((y < 0).any()) and torch.equal(y, ref.qconv2d_ref(x, sx, zx, w, sw, zw, (1, 1), (0, 0))), \
        "qconv2d's default stride / padding / relu differ from 1 / 0 / False"
    got = q.qconv2d(x, sx, zx, 8, wp, sw, 3, out_scale=OUT[0], out_zero_point=OUT[1])
    want = ref.qconv2d_ref(x, sx, zx, w, sw, zw, (1, 1), (0, 0), out_scale=OUT[0], out_zero_point=OUT[1], out_bits=8)
    assert got.dtype == torch.uint8 and int(got.max()) > 127, f"not 8-bit codes: {got.dtype}, max {int(got.max())}"
    assert torch.equal(got, want), "qconv2d's default out_bits is not 8"
