"""dwq.quant.cost.profile's refusals and defaults worked out by hand: a size of 0 in the channel dimension is
refused by name, an integer model (dwq.deploy) is refused, a model without parameters is profiled in
float32, and mean_bitops uses the precisions it is given rather than the model's own set."""
import re

import pytest
from deploy_models import calibrated
from torch import nn

import dwq
from dwq.models import small_cnn
from dwq.nn import QConv2d
from dwq.ops import HAS_EXT
from dwq.quant.cost import mean_bitops, profile


@pytest.mark.parametrize("shape", [(1, 0, 8, 8), (2, 3, 0, 8), (1, 3, 8, 0)])
def test_a_size_of_zero_after_the_batch_is_refused_by_name(shape):
    """Every size after the batch must be >= 1, the channel count too (a check from the third size on let
    (1, 0, 8, 8) reach the conv, which failed with torch's own error)."""
    with pytest.raises(ValueError, match=re.escape(f"profile: input_size must be sizes >= 1, got {shape}")):
        profile(nn.Sequential(nn.Conv2d(3, 4, 3)), shape)


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
def test_an_integer_model_is_refused():
    """A converted model's layers are not conv/linear modules: counted, they would drop out silently."""
    im = dwq.deploy.convert(calibrated(small_cnn(precisions=[4], width=4), (2, 1, 28, 28)))
    with pytest.raises(ValueError, match=r"profile counts fake-quant models: 'layers\.conv2' is a layer of an "
                                         r"integer model \(dwq\.deploy\); profile the model it was converted from"):
        profile(im, (1, 1, 28, 28))


def test_a_model_without_parameters_is_profiled_in_float32():
    """A batch norm without affine parameters has float32 buffers only: the random input must be float32 (a
    float64 one fails in batch_norm with mixed dtypes). 2 ops per output element: 2 * 3 * 4 * 4 per sample."""
    report = profile(nn.Sequential(nn.BatchNorm2d(3, affine=False)), (2, 3, 4, 4))
    assert [(l.kind, l.macs, l.quantized) for l in report.layers] == [("bn", 96, False)]


def test_mean_bitops_uses_the_given_precisions_over_the_models_own():
    """Given precisions are averaged, not the model's set nor a RandomPrecision's choices (and a model whose
    layers have different sets, which has no set of its own, is priced at the given ones)."""
    mixed = nn.Sequential(QConv2d(1, 4, 3, precisions=[2, 4]), QConv2d(4, 4, 3, precisions=[8, 16]))
    q = 4 * 6 * 6 * 9 + 4 * 4 * 4 * 4 * 9  # both convs are quantized: 1296 + 2304 MACs
    assert mean_bitops(mixed, [2, 8], (1, 1, 8, 8)) == (q * 4 + q * 64) / 2
    model = small_cnn(precisions=[2, 4, 8], width=4)
    report = profile(model, (1, 1, 28, 28))
    drawn = dwq.RandomPrecision(model, bits=[2, 4])
    assert mean_bitops(drawn, [8], (1, 1, 28, 28)) == report.bitops(8) != report.mean_bitops([2, 4])
    assert mean_bitops(model, [(2, 8)], (1, 1, 28, 28)) == report.bitops((2, 8))
