"""dwq.deploy.convert refuses a BatchNorm2d subclass that overrides _check_input_dim (one of the methods
the layer's forward runs, tracing.py's _FORWARD_PATH): what it does the converted affine would not run,
so it is named rather than dropped; the plain BatchNorm2d in its place converts."""
import pytest
from deploy_models import calibrated
from torch import nn

from dwq.deploy import ConversionError, convert
from dwq.nn import QConv2d
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


class _LenientBN(nn.BatchNorm2d):
    def _check_input_dim(self, input):  # (accepts any rank: forward would go on with what it is given)
        pass


class _Net(nn.Module):
    def __init__(self, bn=nn.BatchNorm2d):
        super().__init__()
        self.c = QConv2d(3, 4, 3, padding=1, precisions=[8])
        self.bn = bn(4)

    def forward(self, x):
        return self.bn(self.c(x)).flatten(1)


def test_a_batch_norm_overriding_check_input_dim_is_refused_by_name():
    with pytest.raises(ConversionError, match=r"cannot convert layer 'bn' \(_LenientBN\): it overrides "
                                              r"BatchNorm2d\._check_input_dim"):
        convert(calibrated(_Net(_LenientBN), (2, 3, 6, 6)))
    convert(calibrated(_Net(), (2, 3, 6, 6)))
