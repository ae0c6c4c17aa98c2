"""dwq.deploy.convert refuses an in-place ReLU applied to a flatten of a tensor that the model reads again
afterwards (through another flatten): in eager PyTorch the flatten is a view, so the ReLU rectifies the
tensor itself and the later read sees rectified values, which the integer model (no shared storage) would
not. The alias walk goes back through the flatten to the tensor that owns the storage."""
import pytest
import torch
from deploy_models import calibrated
from torch import nn
from torch.nn import functional as F

from dwq.deploy import ConversionError, convert
from dwq.nn import QConv2d, QLinear
from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


class _ReluOfAFlattenView(nn.Module):
    def __init__(self, inplace):
        super().__init__()
        self.c = QConv2d(3, 4, 3, padding=1, precisions=[8])
        self.fc1 = QLinear(4 * 4 * 4, 3, precisions=[8])
        self.fc2 = QLinear(4 * 4 * 4, 3, precisions=[8])
        self.inplace = inplace

    def forward(self, x):
        y = self.c(x)
        r = F.relu(torch.flatten(y, 1), inplace=self.inplace)  # eager, in place: rectifies y as well
        return self.fc1(r) + self.fc2(torch.flatten(y, 1))


def test_an_inplace_relu_of_a_flatten_view_whose_tensor_is_read_again_is_refused():
    m = calibrated(_ReluOfAFlattenView(inplace=True), (4, 3, 4, 4))
    with pytest.raises(ConversionError, match=r"'relu' \(call_function\).*an in-place ReLU whose input is read "
                                              r"again after it \(by 'flatten_1'\)"):
        convert(m)


def test_the_same_model_without_inplace_converts_and_agrees():
    torch.manual_seed(0)
    m = calibrated(_ReluOfAFlattenView(inplace=False), (8, 3, 4, 4))
    im = convert(m)
    x = torch.rand(4, 3, 4, 4)
    with torch.no_grad():
        ref, got = m(x), im(x)
    assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()
