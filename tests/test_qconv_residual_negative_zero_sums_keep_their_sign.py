"""dwq.ops.qconv2d_residual's float output at sums that are -0.0: the residual epilogue applies its ReLU as
`v < 0 ? 0 : v`, as torch.relu and add_relu_ do, so relu(-0.0 + -0.0) stays -0.0, and without the ReLU the
sum's sign is the add's. test_qconv_residual compares with torch.equal, for which -0.0 == 0.0: here the
output is compared bit for bit with qconv2d then torch.relu(y + residual), on a partial column block too."""
import pytest
import torch

import test_qconv_residual as base
from dwq.ops import qconv2d

CL = torch.channels_last


@base.needs_ext
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("bits", [4, 8])
def test_negative_zero_sums_keep_their_sign_bit(isa, bits, relu):
    """An input of zero-point codes gives accumulators 0, so the conv's output is 0 * (negative affine
    scale) = -0.0 in some channels; a -0.0 residual there makes the sum -0.0, whose sign bit the output must
    keep (a ReLU taken as `v <= 0 ? 0 : v` or as max(v, 0) would give +0.0)."""
    g = torch.Generator().manual_seed(4)
    conv, x, *_, nxt = base._case(g, bits, 16, 70, 5, 3, 1, True)
    x = torch.full_like(x, int(conv[1])).contiguous(memory_format=CL)  # every code is the zero point
    a = torch.where(torch.arange(70) % 3 == 0, 1.0, -1.0) * (torch.rand(70, generator=g) + 0.5)
    conv = conv[:8] + (a, None)  # no bias: the conv's output is +-0.0 by the affine scale's sign
    y0 = qconv2d(x, *conv)
    res = torch.randn(y0.shape, generator=g).contiguous(memory_format=CL)
    res[:, :, 1:4] = -0.0
    y, q = torch.ops.dwq.qconv2d_residual.default(x, *conv[:5], [3, 3], [1, 1], [1, 1], *conv[8:], res, relu, *nxt)
    want = torch.relu(y0 + res) if relu else y0 + res
    assert bool(torch.signbit(want).logical_and(want == 0).any()), "the case has no -0.0 sum"
    diff = torch.nonzero(y.view(torch.int32) != want.view(torch.int32))
    assert diff.numel() == 0, (f"{isa} relu {relu}: {diff.shape[0]} outputs differ in their bits, first at "
                               f"{diff[0].tolist()}: {y[tuple(diff[0])].item()!r} instead of "
                               f"{want[tuple(diff[0])].item()!r}")
    assert torch.equal(q, base.quantize_act_ref(want, *nxt)), f"{isa} relu {relu}: codes differ"
