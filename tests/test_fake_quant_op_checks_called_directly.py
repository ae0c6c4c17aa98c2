"""dwq::fake_quantize's own C++ checks (csrc/ops/fake_quant_checks.h), called through
torch.ops.dwq so that the Python wrapper's checks do not run first: a zero point list shorter than
the channels (read past its end), a zero point below 0 and a zero scale are refused and named."""

import pytest
import torch

from dwq.ops import HAS_EXT, has_kernel

pytestmark = pytest.mark.skipif(not (HAS_EXT and has_kernel("fake_quantize", "cpu")),
                                reason="dwq._C (the compiled extension) is not importable")


def _call(scale, zero_point, axis=1, bits=4):
    return torch.ops.dwq.fake_quantize(torch.randn(4, 3), scale, zero_point, bits, axis, False)


def _qparams():
    return torch.full((3,), 0.1), torch.full((3,), 2, dtype=torch.int32)


def test_a_zero_point_shorter_than_the_channels_is_refused():
    s, z = _qparams()
    with pytest.raises(RuntimeError, match=r"dwq.fake_quantize: scale and zero_point need 3 entries "
                                           r"\(x.size\(axis\)\), got 3 and 2"):
        _call(s, z[:2])


@pytest.mark.parametrize("axis", [1, None])
def test_a_negative_zero_point_is_refused(axis):
    s, z = _qparams()
    z[0] = -1
    if axis is None:
        s, z = s[:1], z[:1]
    with pytest.raises(RuntimeError, match=r"dwq.fake_quantize: zero_point\[0\] = -1 is not a code of 4 bits "
                                           r"\(0..15\)"):
        _call(s, z, axis)


@pytest.mark.parametrize("value", [0.0, -0.1])
def test_a_scale_that_is_not_positive_is_refused(value):
    s, z = _qparams()
    s[2] = value
    with pytest.raises(RuntimeError, match=rf"dwq.fake_quantize: scale\[2\] must be finite and > 0, got {value:g}"):
        _call(s, z)


@pytest.mark.parametrize("shape", [(5,), (4, 3), (2, 3, 4)])
def test_every_negative_axis_down_to_minus_ndim_is_a_dimension(shape):
    # axis = -x.dim() is dimension 0: the bounds check must take it, as maybe_wrap_dim does
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    s, z = torch.full((shape[0],), 0.1), torch.full((shape[0],), 2, dtype=torch.int32)
    got, _ = torch.ops.dwq.fake_quantize(x, s, z, 4, -len(shape), False)
    want, _ = torch.ops.dwq.fake_quantize(x, s, z, 4, 0, False)
    assert torch.equal(got, want)
    with pytest.raises(RuntimeError, match=rf"dwq.fake_quantize: axis={-len(shape) - 1} is not a dimension of x"):
        torch.ops.dwq.fake_quantize(x, s, z, 4, -len(shape) - 1, False)
