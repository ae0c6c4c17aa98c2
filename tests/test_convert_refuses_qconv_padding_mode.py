"""dwq.deploy.convert refuses a QConv2d whose padding is not numeric zero padding (padding_mode
'reflect' / 'replicate' / 'circular'): the integer conv pads with zeros, so converted it would compute
another border, with no error at conversion."""
import pytest
from deploy_models import calibrated
from torch import nn

from dwq.deploy import ConversionError, convert
from dwq.nn import QConv2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


class _Net(nn.Module):
    def __init__(self, padding_mode):
        super().__init__()
        self.c = QConv2d(3, 4, 3, padding=1, padding_mode=padding_mode, precisions=[8])

    def forward(self, x):
        return self.c(x).flatten(1)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_a_quantized_conv_with_a_padding_mode_other_than_zeros_is_refused(mode):
    m = calibrated(_Net(mode), (2, 3, 6, 6))
    with pytest.raises(ConversionError, match=rf"layer 'c': the integer conv supports .*padding_mode='{mode}'"):
        convert(m)
    convert(calibrated(_Net("zeros"), (2, 3, 6, 6)))
