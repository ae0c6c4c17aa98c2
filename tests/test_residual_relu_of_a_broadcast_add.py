"""dwq.deploy.IntegerModel: an in-place residual add + ReLU read by a quantized conv, whose first
operand is the smaller (broadcast) one, cannot write that operand and makes a new tensor: it still
takes the ReLU, at quantized and full precision (found by mutation: that branch's ReLU was untested)."""
import pytest
import torch
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import convert
from dwq.nn import QConv2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


class _BroadcastAddRelu(nn.Module):
    def __init__(self, precisions):
        super().__init__()
        self.c1 = QConv2d(1, 4, 3, padding=1, precisions=precisions)
        self.c2 = QConv2d(4, 4, 3, padding=1, precisions=precisions)

    def forward(self, x):
        y = self.c1(x)
        z = torch.relu(nn.functional.adaptive_avg_pool2d(y, 1) + y)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.c2(z), 1), 1)


@pytest.mark.parametrize("batch", [1, 2])
def test_the_relu_after_a_broadcast_first_operand_add_is_kept(batch):
    torch.manual_seed(0)
    m = calibrated(_BroadcastAddRelu([4, None]), (4, 1, 7, 9))
    im = convert(m)
    assert [s.get("inplace") for s in im.program if s.get("fn") == "add"] == [True]
    x = torch.rand(batch, 1, 7, 9, generator=torch.Generator().manual_seed(batch))
    for p in (4, None):
        with dwq.precision(m, p), dwq.precision(im, p), torch.no_grad():
            y = m.c1(x)
            assert (nn.functional.adaptive_avg_pool2d(y, 1) + y).min() < 0  # (the ReLU changes something)
            ref, got = m(x), im(x)
        assert (got - ref).abs().max() <= 1e-5 * ref.abs().max(), p
