"""dwq.deploy.convert keeps a pooling module's ceil_mode: on an odd-sized map, MaxPool2d(2, ceil_mode=True)
and AvgPool2d(2, ceil_mode=True) give one more row and column than the floor rule, so dropping it
converted a model of another output size."""
import pytest
import torch
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import convert
from dwq.nn import QConv2d, SwitchableBatchNorm2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

PRECISIONS = [4, None]


class _Between(nn.Module):
    def __init__(self, pool):
        super().__init__()
        self.c1 = QConv2d(3, 4, 3, padding=1, precisions=PRECISIONS)
        self.b1 = SwitchableBatchNorm2d(4, PRECISIONS)
        self.pool = pool
        self.c2 = QConv2d(4, 4, 3, padding=1, precisions=PRECISIONS)

    def forward(self, x):
        return self.c2(self.pool(torch.relu(self.b1(self.c1(x))))).flatten(1)


@pytest.mark.parametrize("pool, fn", [(nn.MaxPool2d(2, ceil_mode=True), "max_pool2d"),
                                      (nn.AvgPool2d(2, ceil_mode=True), "avg_pool2d")], ids=["max", "avg"])
def test_pooling_keeps_its_ceil_mode(pool, fn):
    torch.manual_seed(0)
    m = calibrated(_Between(pool), (8, 3, 7, 7))
    im = convert(m)
    step = next(s for s in im.program if s.get("fn") == fn)
    assert step["kwargs"]["ceil_mode"] is True
    x = torch.rand(3, 3, 7, 7)
    for p in PRECISIONS:
        with dwq.precision(m, p), dwq.precision(im, p), torch.no_grad():
            ref, got = m(x), im(x)
        assert ref.shape == (3, 4 * 4 * 4) and got.shape == ref.shape, (p, got.shape)
        assert (got - ref).abs().max() <= 1e-5 * ref.abs().max(), p
