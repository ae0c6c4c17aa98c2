"""dwq.deploy.convert carries every argument of the layers it converts (or refuses what the integer
ops do not support): a pooling's dilation or divisor, a Flatten's dims, a float conv's groups, an
add's alpha, a quantized conv's dilation. Dropped, each converted into a model that computes
something else (or fails at its first forward) with no error at conversion."""
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
REL = 1e-5


def _assert_same(m, x):
    im = convert(m)
    for p in PRECISIONS:
        with dwq.precision(m, p), dwq.precision(im, p), torch.no_grad():
            ref, got = m(x), im(x)
        assert got.shape == ref.shape, (p, got.shape, ref.shape)
        assert (got - ref).abs().max() <= REL * ref.abs().max(), p
    return im


class _Between(nn.Module):
    """QConv2d -> SBN -> ReLU -> ``mid`` -> QConv2d -> ``tail``: ``mid`` between two quantized layers."""

    def __init__(self, mid, tail=None):
        super().__init__()
        self.c1 = QConv2d(3, 4, 3, padding=1, precisions=PRECISIONS)
        self.b1 = SwitchableBatchNorm2d(4, PRECISIONS)
        self.mid = mid
        self.c2 = QConv2d(4, 4, 3, padding=1, precisions=PRECISIONS)
        self.tail = tail if tail is not None else nn.Flatten()

    def forward(self, x):
        return self.tail(self.c2(self.mid(torch.relu(self.b1(self.c1(x))))))


def test_max_pooling_keeps_its_dilation():
    """nn.MaxPool2d(3, stride=1, dilation=2) on the codes between two layers: without its dilation the
    integer model pooled 3x3 neighbours (another output size and other maxima)."""
    torch.manual_seed(0)
    m = calibrated(_Between(nn.MaxPool2d(3, stride=1, dilation=2)), (8, 3, 10, 10))
    im = _assert_same(m, torch.rand(4, 3, 10, 10))
    step = next(s for s in im.program if s.get("fn") == "max_pool2d")
    assert step["kwargs"]["dilation"] in (2, [2, 2])


def test_average_pooling_keeps_its_divisor_override():
    torch.manual_seed(0)
    m = calibrated(_Between(nn.AvgPool2d(2, divisor_override=3)), (8, 3, 8, 8))
    im = _assert_same(m, torch.rand(4, 3, 8, 8))
    step = next(s for s in im.program if s.get("fn") == "avg_pool2d")
    assert step["kwargs"]["divisor_override"] == 3


def test_flatten_module_keeps_its_start_dim():
    """nn.Flatten(start_dim=2) keeps the channel dim: flattened from dim 1, the output had another shape."""
    torch.manual_seed(0)
    m = calibrated(_Between(nn.Identity(), tail=nn.Flatten(start_dim=2)), (8, 3, 6, 6))
    _assert_same(m, torch.rand(4, 3, 6, 6))


class _GroupedStem(nn.Module):
    """A float grouped stem conv (kept in float by convert) before a quantized conv."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(4, 4, 3, padding=1, groups=2)
        self.c = QConv2d(4, 4, 3, padding=1, precisions=PRECISIONS)

    def forward(self, x):
        return self.c(self.stem(x)).flatten(1)


def test_a_float_grouped_conv_keeps_its_groups():
    torch.manual_seed(0)
    m = calibrated(_GroupedStem(), (8, 4, 6, 6))
    _assert_same(m, torch.rand(4, 4, 6, 6))


class _AddAlpha(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = QConv2d(3, 4, 3, padding=1, precisions=PRECISIONS)
        self.c2 = QConv2d(3, 4, 3, padding=1, precisions=PRECISIONS)

    def forward(self, x):
        return torch.add(self.c1(x), self.c2(x), alpha=2).flatten(1)


def test_an_add_with_alpha_is_refused():
    """torch.add(a, b, alpha=2) is a + 2b: converted as a + b, the logits were silently wrong."""
    m = calibrated(_AddAlpha(), (4, 3, 6, 6))
    with pytest.raises(ConversionError, match=r"'add' \(call_function\).*only a \+ b of two tensors"):
        convert(m)


def test_a_dilated_quantized_conv_is_refused():
    """The integer conv has no dilation: a dilated QConv2d converted as an undilated one (another output
    size, other sums) instead of a ConversionError naming the layer."""
    m = _Between(nn.Identity())
    m.c2 = QConv2d(4, 4, 3, padding=2, dilation=2, precisions=PRECISIONS)
    m = calibrated(m, (4, 3, 6, 6))
    with pytest.raises(ConversionError, match=r"layer 'c2'.*dilation=\(2, 2\)"):
        convert(m)


def test_a_layer_whose_input_is_quantized_elsewhere_is_refused():
    """QConv2d(quantize_input=False) takes float input as it is: the integer conv always quantizes its
    input, so converting it would compute another layer; it is refused by name instead, even where the
    layer holds an activation range (trained with quantize_input=True, then switched off)."""
    m = calibrated(_Between(nn.Identity()), (4, 3, 6, 6))
    m.c2.quantize_input = False
    with pytest.raises(ConversionError, match=r"layer 'c2': quantize_input=False"):
        convert(m)
