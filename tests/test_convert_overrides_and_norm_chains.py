"""dwq.deploy.convert: a QConv2d subclass that overrides how its input or weight is quantized is refused
by name (the converted layer would quantize as the base class does), and two batch norms in a row are
both applied (each norm is its own affine; only a quantized layer absorbs the norm it feeds)."""
import pytest
import torch
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import ConversionError, convert
from dwq.nn import QConv2d, SwitchableBatchNorm2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

PRECISIONS = [4, None]


class HalfWeightQConv2d(QConv2d):
    def quant_weight(self):
        return 0.5 * super().quant_weight()


class ClampedInputQConv2d(QConv2d):
    def quant_input(self, x):
        return super().quant_input(x.clamp(max=0.5))


class _Net(nn.Module):
    def __init__(self, conv=QConv2d):
        super().__init__()
        self.c1 = QConv2d(3, 4, 3, padding=1, precisions=PRECISIONS)
        self.c2 = conv(4, 4, 3, padding=1, precisions=PRECISIONS)

    def forward(self, x):
        return self.c2(torch.relu(self.c1(x))).flatten(1)


@pytest.mark.parametrize("conv, method", [(HalfWeightQConv2d, "quant_weight"), (ClampedInputQConv2d, "quant_input")],
                         ids=["quant_weight", "quant_input"])
def test_a_qconv_subclass_overriding_its_quantizer_is_refused(conv, method):
    m = calibrated(_Net(conv), (4, 3, 6, 6))
    with pytest.raises(ConversionError, match=rf"layer 'c2' \({conv.__name__}\): it overrides QConv2d\.{method}"):
        convert(m)


class _TwoNorms(nn.Module):
    """float stem -> BatchNorm2d -> SwitchableBatchNorm2d -> ReLU -> QConv2d: neither norm follows a
    quantized layer, so each stays a float affine."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.n1 = nn.BatchNorm2d(4)
        self.n2 = SwitchableBatchNorm2d(4, PRECISIONS)
        self.c = QConv2d(4, 4, 3, padding=1, precisions=PRECISIONS)

    def forward(self, x):
        return self.c(torch.relu(self.n2(self.n1(self.stem(x))))).flatten(1)


def test_two_batch_norms_in_a_row_are_both_applied():
    torch.manual_seed(0)
    m = _TwoNorms()
    with torch.no_grad():  # norms far from the identity, so dropping either shows
        m.n1.weight.copy_(torch.tensor([2.0, -1.5, 0.5, 3.0]))
        m.n1.bias.copy_(torch.tensor([0.5, -0.3, 1.0, 0.2]))
    m = calibrated(m, (8, 3, 6, 6), batches=2)
    im, x = convert(m), torch.rand(4, 3, 6, 6)
    for p in PRECISIONS:
        with dwq.precision(m, p), dwq.precision(im, p), torch.no_grad():
            ref, got = m(x), im(x)
        assert (got - ref).abs().max() <= 1e-5 * ref.abs().max(), p
