"""dwq.deploy.IntegerModel: an in-place residual add + ReLU read by a quantized conv, whose first
operand is the smaller (broadcast) one, cannot write that operand and makes a new tensor: it still
takes the ReLU, at quantized and full precision (found by mutation: that branch's ReLU was untested)."""
import pytest
import torch
from deploy_models import calibrated
from test_deploy_convert import _BroadcastAdd
from torch import nn

import dwq
from dwq.deploy import convert
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


@pytest.mark.parametrize("batch", [1, 2])
def test_the_relu_after_a_broadcast_first_operand_add_is_kept(batch):
    torch.manual_seed(0)
    m = calibrated(_BroadcastAdd([4, None], relu=True), (4, 1, 7, 9))
    im = convert(m)
    assert [s.get("inplace") for s in im.program if s.get("fn") == "add"] == [True]
    x = torch.rand(batch, 1, 7, 9, generator=torch.Generator().manual_seed(batch))
    for p in (4, None):
        with dwq.precision(m, p), dwq.precision(im, p), torch.no_grad():
            y = m.c1(x)
            assert (nn.functional.adaptive_avg_pool2d(y, 1) + y).min() < 0  # (the ReLU changes something)
            ref, got = m(x), im(x)
        assert (got - ref).abs().max() <= 1e-5 * ref.abs().max(), p
