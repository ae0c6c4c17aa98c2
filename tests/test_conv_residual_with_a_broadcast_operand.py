"""dwq.deploy.IntegerModel: a quantized conv + residual add + ReLU runs as one fused step only where the
residual has the conv output's shape; a broadcast residual ([B, C, 1, 1], squeeze-and-excite-like) runs
the conv, then the add (found by mutation: no test added a residual of another shape to a conv)."""
import pytest
import torch
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import convert
from dwq.nn import QConv2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


class _ConvPlusPooled(nn.Module):
    def __init__(self, precisions):
        super().__init__()
        self.c1 = QConv2d(1, 4, 3, padding=1, precisions=precisions)
        self.c2 = QConv2d(4, 4, 3, padding=1, precisions=precisions)
        self.c3 = QConv2d(4, 3, 1, precisions=precisions)

    def forward(self, x):
        y = self.c1(x)
        pooled = nn.functional.adaptive_avg_pool2d(y, 1)  # (before c2: c2's output goes straight into the add)
        z = torch.relu(self.c2(y) + pooled)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.c3(z), 1), 1)


@pytest.mark.parametrize("batch", [1, 3])
def test_a_conv_plus_a_broadcast_residual_equals_the_step_by_step_program(batch):
    torch.manual_seed(0)
    m = calibrated(_ConvPlusPooled([2, 4, None]), (4, 1, 7, 9))
    im, unfused = convert(m), convert(m)
    unfused._compile(fuse=False)
    assert [s.get("call", s.get("fn")) for s in im.program][-6:-3] == ["c2", "add", "relu"]
    x = torch.rand(batch, 1, 7, 9, generator=torch.Generator().manual_seed(batch))
    for p in (2, 4, None):
        with dwq.precision(m, p), dwq.precision(im, p), dwq.precision(unfused, p), torch.no_grad():
            ref, got = m(x), im(x)
            assert torch.equal(got, unfused(x)), p
        assert (got - ref).abs().max() <= 1e-5 * ref.abs().max(), p
