"""dwq.deploy.convert folds a plain nn.BatchNorm2d that only a quantized layer feeds (and the ReLU after it)
into that layer's epilogue, as it does a SwitchableBatchNorm2d, so that no float batch norm step is left
between two quantized layers; and the integer model starts at the source model's current precision
wherever that precision stands in the set (not only the set's first)."""
import pytest
import torch
from deploy_models import calibrated
from test_convert_layer_arguments import PRECISIONS, _assert_same
from torch import nn

import dwq
from dwq.deploy import convert
from dwq.deploy.layers import FloatAffine
from dwq.nn import QConv2d, SwitchableBatchNorm2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


class _PlainNorm(nn.Module):
    """QConv2d -> nn.BatchNorm2d -> ReLU -> QConv2d."""

    def __init__(self, precisions=PRECISIONS):
        super().__init__()
        self.c1 = QConv2d(3, 4, 3, padding=1, precisions=precisions)
        self.b1 = nn.BatchNorm2d(4)
        self.c2 = QConv2d(4, 4, 3, padding=1, precisions=precisions)

    def forward(self, x):
        return self.c2(torch.relu(self.b1(self.c1(x)))).flatten(1)


def test_a_plain_batch_norm_after_a_quantized_conv_is_folded_into_its_epilogue():
    """No FloatAffine layer: c1's plans carry the batch norm's affine and the ReLU, and at the quantized
    precision emit c2's input codes; the logits agree with the source model."""
    torch.manual_seed(0)
    m = calibrated(_PlainNorm(), (8, 3, 6, 6))
    with torch.no_grad():
        m.b1.weight.mul_(1.7)
        m.b1.bias.add_(0.3)
    im = _assert_same(m, torch.rand(4, 3, 6, 6))
    assert not [n for n, lay in im.layers.items() if isinstance(lay, FloatAffine)], \
        f"the batch norm was left in float: {list(im.layers)}"
    quant = im.layers["c1"].plans[0]
    assert quant.relu and quant.affine_scale is not None and quant.out_bits == 4, "bn + ReLU not in c1's epilogue"


class _Chain(nn.Module):
    def __init__(self, precisions):
        super().__init__()
        self.c1 = QConv2d(3, 4, 3, padding=1, precisions=precisions)
        self.b1 = SwitchableBatchNorm2d(4, precisions)
        self.c2 = QConv2d(4, 4, 3, padding=1, precisions=precisions)

    def forward(self, x):
        return self.c2(torch.relu(self.b1(self.c1(x)))).flatten(1)


@pytest.mark.parametrize("current", [2, 4, 8])
def test_the_integer_model_starts_at_the_source_models_precision_anywhere_in_the_set(current):
    """Set [2, 4, 8]: the source model at 2, 4 or 8 gives an integer model at that same precision, whose
    logits are the source model's at it."""
    torch.manual_seed(0)
    m = calibrated(_Chain([2, 4, 8]), (8, 3, 6, 6))
    dwq.set_precision(m, current)
    im = convert(m)
    assert dwq.get_precision(im) == current, f"source at {current}, integer model at {dwq.get_precision(im)}"
    x = torch.rand(2, 3, 6, 6)
    with torch.no_grad():
        ref, got = m(x), im(x)
    assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()
