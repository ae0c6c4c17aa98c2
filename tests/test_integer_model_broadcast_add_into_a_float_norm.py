"""dwq.deploy.IntegerModel: an in-place residual add without a ReLU whose only reader is a float batch norm
that emits the next conv's codes (a pre-activation block's add -> bn) runs as one step with that batch
norm's quantization; where its first operand is the smaller (broadcast) one, the add cannot write it and
makes a new tensor, which must stay unrectified (no ReLU follows the add in the source model)."""
import pytest
import torch
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import convert
from dwq.deploy.integer_model import _ResidualInto
from dwq.nn import QConv2d, SwitchableBatchNorm2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

PRECISIONS = [4, None]


class _BroadcastAddNorm(nn.Module):
    """pooled(c1(x)) + c1(x) -> SBN -> c2: the [B, C, 1, 1] operand first, then a float batch norm."""

    def __init__(self):
        super().__init__()
        self.c1 = QConv2d(1, 4, 3, padding=1, precisions=PRECISIONS)
        self.bn = SwitchableBatchNorm2d(4, PRECISIONS)
        self.c2 = QConv2d(4, 4, 3, padding=1, precisions=PRECISIONS)

    def forward(self, x):
        y = self.c1(x)
        z = nn.functional.adaptive_avg_pool2d(y, 1) + y
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.c2(self.bn(z)), 1), 1)


@pytest.mark.parametrize("batch", [1, 2])
def test_a_broadcast_first_operand_add_read_by_a_float_norm_is_not_rectified(batch):
    """The add runs as a fused _ResidualInto step feeding the batch norm; its sum has negative entries, and
    the integer model's logits equal the source model's at quantized and full precision."""
    torch.manual_seed(0)
    m = calibrated(_BroadcastAddNorm(), (4, 1, 7, 9))
    with torch.no_grad():
        for bn in m.bn.bn:  # a batch norm far from the identity, so that a rectified sum shows in every logit
            bn.bias.add_(0.5)
    im = convert(m)
    assert [s.get("inplace") for s in im.program if s.get("fn") == "add"] == [True]
    assert any(isinstance(step[0], _ResidualInto) for step in im._plan[0]), "the add is not fused with the norm"
    x = torch.rand(batch, 1, 7, 9, generator=torch.Generator().manual_seed(batch))
    for p in PRECISIONS:
        with dwq.precision(m, p), dwq.precision(im, p), torch.no_grad():
            y = m.c1(x)
            assert (nn.functional.adaptive_avg_pool2d(y, 1) + y).min() < 0  # (a ReLU would change something)
            ref, got = m(x), im(x)
        assert (got - ref).abs().max() <= 1e-5 * ref.abs().max(), (p, (got - ref).abs().max())
