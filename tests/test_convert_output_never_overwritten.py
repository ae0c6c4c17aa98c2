"""dwq.deploy.convert's in-place steps never overwrite the model's output: a ReLU whose input is the
returned tensor (its result unused, as fx keeps it) runs out of place, so the logits stay unrectified."""
import pytest
import torch
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import convert
from dwq.nn import QConv2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

PRECISIONS = [4, None]


class _DeadReluOfTheOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = QConv2d(3, 4, 3, padding=1, precisions=PRECISIONS)
        self.c2 = QConv2d(4, 4, 3, padding=1, precisions=PRECISIONS)

    def forward(self, x):
        y = self.c2(self.c1(x))
        torch.relu(y)  # read once more, result unused: nothing may change y
        return y


def test_a_relu_of_the_returned_tensor_does_not_rectify_it():
    torch.manual_seed(0)
    m = calibrated(_DeadReluOfTheOutput(), (8, 3, 6, 6), batches=2)
    im = convert(m)
    assert not any(s.get("inplace") for s in im.config()["program"]), im.config()["program"]
    x = torch.rand(4, 3, 6, 6)
    for p in PRECISIONS:
        with torch.no_grad(), dwq.precision(m, p), dwq.precision(im, p):
            want, got = m(x), im(x)
        assert (want < 0).any()  # (else a rectified output could not differ)
        assert (got < 0).any(), p
        assert torch.allclose(got, want, rtol=0, atol=1e-4 * want.abs().max().item()), p
