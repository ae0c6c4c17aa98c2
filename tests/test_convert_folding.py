"""dwq.deploy.convert edge cases: a layer's own bias folded through its batch norm (full precision and
quantized), average pooling between quantized layers (run on values, never on codes; count_include_pad
kept), and the integer program's in-place ReLU / add (only on a fresh tensor nothing else reads), and
the refusal of a source model's positional in-place ReLU whose input is read again.

Each model is calibrated at every precision of its set; at these widths and sizes both paths see the
same codes, so the logits agree within REL (float rounding) of the largest |logit|."""
import pytest
import torch
import torch.nn.functional as F
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.deploy import ConversionError, compare, convert
from dwq.nn import QConv2d, SwitchableBatchNorm2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")

REL = 1e-5
PRECISIONS = [4, 8, None]


def _agree(model, x):
    im = convert(model)
    r = compare(model, im, x)
    assert list(r) == ["4", "8", "fp"]
    return {name: v["rel_max_diff"] for name, v in r.items()}


def _shift_bn_biases(model, by=0.3):
    """Non-zero BN shifts at every precision (a fresh BN's bias is 0, which hides a wrong fold)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SwitchableBatchNorm2d):
                for bn in m.bn:
                    bn.bias.add_(by)
                    bn.weight.mul_(1.7)
    return model


class _BiasedConvBN(nn.Module):
    """QConv2d(bias=True) -> SBN -> ReLU -> QConv2d(bias=True) -> SBN: both convs fold their bias through the BN."""

    def __init__(self):
        super().__init__()
        self.c1 = QConv2d(3, 6, 3, padding=1, bias=True, precisions=PRECISIONS)
        self.b1 = SwitchableBatchNorm2d(6, PRECISIONS)
        self.c2 = QConv2d(6, 6, 3, padding=1, bias=True, precisions=PRECISIONS)
        self.b2 = SwitchableBatchNorm2d(6, PRECISIONS)

    def forward(self, x):
        return self.b2(self.c2(torch.relu(self.b1(self.c1(x))))).flatten(1)


def _biased(model):
    with torch.no_grad():  # a bias large next to the BN's scale, so bias vs. bias * scale differs clearly
        for c in (model.c1, model.c2):
            c.bias.copy_(torch.linspace(-1.0, 1.0, c.bias.numel()))
    return model


def test_conv_bias_is_scaled_by_its_batch_norm_at_every_precision():
    """A conv's own bias goes through BN as bias * a + b (a = gamma / std): folded as bias + b, the integer
    model's logits were off at full precision (float weights) and at every quantized precision alike."""
    torch.manual_seed(0)
    m = calibrated(_shift_bn_biases(_biased(_BiasedConvBN())), (16, 3, 8, 8), batches=2)
    diffs = _agree(m, torch.rand(6, 3, 8, 8))
    assert all(d <= REL for d in diffs.values()), diffs


class _AvgPoolBetween(nn.Module):
    """QConv2d -> SBN -> ReLU -> AvgPool2d(2, padding=1, count_include_pad=False) -> QConv2d -> SBN."""

    def __init__(self, count_include_pad=False):
        super().__init__()
        self.c1 = QConv2d(3, 6, 3, padding=1, precisions=PRECISIONS)
        self.b1 = SwitchableBatchNorm2d(6, PRECISIONS)
        self.pool = nn.AvgPool2d(2, padding=1, count_include_pad=count_include_pad)
        self.c2 = QConv2d(6, 6, 3, padding=1, precisions=PRECISIONS)
        self.b2 = SwitchableBatchNorm2d(6, PRECISIONS)

    def forward(self, x):
        return self.b2(self.c2(self.pool(torch.relu(self.b1(self.c1(x)))))).flatten(1)


@pytest.mark.parametrize("count_include_pad", [False, True])
def test_average_pooling_between_quantized_layers_keeps_its_padding_rule(count_include_pad):
    """Average pooling runs on the float values between the layers with the module's count_include_pad:
    treated like max pooling (run on the next layer's codes, whose average is not a code), or with the
    padding counted in the border averages, the logits were off at every quantized precision."""
    torch.manual_seed(0)
    m = calibrated(_shift_bn_biases(_AvgPoolBetween(count_include_pad)), (16, 3, 8, 8), batches=2)
    diffs = _agree(m, torch.rand(6, 3, 8, 8))
    assert all(d <= REL for d in diffs.values()), diffs


class _SumReadTwice(nn.Module):
    """s = c1(x) + c2(x); relu(s) + s: the ReLU's input is read again by the last add."""

    def __init__(self):
        super().__init__()
        self.c1 = QConv2d(3, 4, 3, padding=1, precisions=PRECISIONS)
        self.c2 = QConv2d(3, 4, 3, padding=1, precisions=PRECISIONS)

    def forward(self, x):
        s = self.c1(x) + self.c2(x)
        return (F.relu(s) + s).flatten(1)


def test_relu_of_a_value_read_again_is_not_done_in_place():
    """The integer program rectifies in place only a fresh value nothing else reads: done in place on s
    (read again by the add), it computed relu(s) + relu(s) where the model computes relu(s) + s."""
    m = calibrated(_SumReadTwice(), (8, 3, 8, 8))
    im = convert(m)
    relu = [s for s in im.program if s.get("fn") == "relu"]
    assert len(relu) == 1 and not relu[0].get("inplace")
    x = torch.rand(4, 3, 8, 8)
    for p in PRECISIONS:
        with dwq.precision(m, p), dwq.precision(im, p), torch.no_grad():
            ref, got = m(x), im(x)
        assert (ref < 0).any()  # (some of s is negative, so an in-place ReLU would show)
        assert (got - ref).abs().max() <= REL * ref.abs().max(), p


class _FlattenTwice(nn.Module):
    """y = c(x); relu(y.flatten(1)) + y.flatten(1): the two flattens are views of one tensor."""

    def __init__(self):
        super().__init__()
        self.c = QConv2d(3, 4, 3, padding=1, precisions=PRECISIONS)

    def forward(self, x):
        y = self.c(x)
        return F.relu(y.flatten(1)) + y.flatten(1)


def test_relu_of_a_flatten_view_is_not_done_in_place():
    """A flatten's output is a view of its input, not a fresh tensor: a ReLU done in place on one view
    rectified the tensor the other view reads (relu(y) + relu(y) where the model computes relu(y) + y)."""
    m = calibrated(_FlattenTwice(), (8, 3, 8, 8))
    im = convert(m)
    assert not any(s.get("inplace") for s in im.program if s.get("fn") == "relu")
    x = torch.rand(4, 3, 8, 8)
    for p in PRECISIONS:
        with dwq.precision(m, p), dwq.precision(im, p), torch.no_grad():
            ref, got = m(x), im(x)
        assert (ref < 0).any()
        assert (got - ref).abs().max() <= REL * ref.abs().max(), p


class _PositionalInplaceReluReadAgain(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = QConv2d(3, 4, 3, padding=1, precisions=[8])
        self.c2 = QConv2d(4, 4, 3, padding=1, precisions=[8])

    def forward(self, x):
        y = self.c1(x)
        r = F.relu(y, True)  # inplace=True given positionally
        return (self.c2(r) + y).flatten(1)  # eager: y is r here


def test_positional_inplace_relu_read_again_is_refused():
    """F.relu(y, True) is in place as much as F.relu(y, inplace=True): converted, the integer model would
    add the unrectified y where eager PyTorch adds the rectified one. (fx records the positional flag as
    the keyword today; the check must see it either way.)"""
    m = calibrated(_PositionalInplaceReluReadAgain(), (4, 3, 8, 8))
    with pytest.raises(ConversionError, match=r"'relu' \(call_function\): an in-place ReLU whose input is read "
                                              r"again after it"):
        convert(m)
