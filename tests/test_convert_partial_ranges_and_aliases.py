"""dwq.deploy: a precision is calibrated only when EVERY quantized layer has an activation range at it
(a model with one fresh layer, e.g. a replaced head, is not), and an in-place ReLU whose input is also
read through an alias (nn.Identity) made before it is refused like one read directly."""
import pytest
import torch
from deploy_models import calibrated
from torch import nn

from dwq.deploy import ConversionError, calibrated_precisions, check_conversion, convert
from dwq.models import small_cnn
from dwq.nn import QConv2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def test_one_layer_without_a_range_makes_the_precision_uncalibrated():
    """Every other layer has its range at 4 bits, conv2 has none (its quantizer reset): 4 bits cannot be
    converted, so calibrated_precisions leaves it out and check_conversion skips it instead of failing
    in convert on conv2."""
    m = calibrated(small_cnn(precisions=[4, None], width=4), (8, 1, 28, 28))
    assert calibrated_precisions(m) == [4, None]
    m.conv2.input_quant.reset_parameters()
    assert calibrated_precisions(m) == [None]
    rep = check_conversion(m, torch.rand(4, 1, 28, 28), latency_batch=2, budget_s=0.01)
    assert rep["precisions"] == ["fp"] and rep["skipped"] == ["4"]
    with pytest.raises(ConversionError, match="layer 'conv2'"):
        convert(m, [4])


class _InplaceReluAfterAnAlias(nn.Module):
    """skip = Identity(y) is taken before the in-place ReLU rectifies y: in eager PyTorch skip is y, so the
    add reads the rectified values."""

    def __init__(self):
        super().__init__()
        self.c1 = QConv2d(3, 4, 3, padding=1, precisions=[8])
        self.c2 = QConv2d(4, 4, 3, padding=1, precisions=[8])
        self.skip, self.relu = nn.Identity(), nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.c1(x)
        skip = self.skip(y)
        return (self.c2(self.relu(y)) + skip).flatten(1)


def test_inplace_relu_whose_input_is_read_through_an_earlier_alias_is_refused():
    m = calibrated(_InplaceReluAfterAnAlias(), (4, 3, 8, 8))
    with pytest.raises(ConversionError, match=r"layer 'relu' \(ReLU\): an in-place ReLU whose input is read "
                                              r"again after it \(by 'add'\)"):
        convert(m)
