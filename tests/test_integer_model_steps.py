"""dwq.deploy.integer_model: the in-place residual add writes its first operand only where the sum has
that operand's shape and dtype (convert marks adds in place without knowing shapes), and the fused
conv + residual step only where the conv does not ReLU its own output (found by mutation)."""
import pytest
import torch
from deploy_models import calibrated

import dwq
from dwq.deploy import convert
from dwq.deploy.integer_model import _add, _add_relu
from dwq.nn import QConv2d
from dwq.ops import HAS_EXT


def test_an_in_place_add_whose_second_operand_is_larger_makes_a_new_tensor():
    a, b = torch.full((1, 3), -2.0), torch.arange(6.0).reshape(2, 3)
    for fn, want in ((_add, a + b), (_add_relu, torch.relu(a + b))):
        a0 = a.clone()
        y = fn(a0, b, inplace=True)
        assert y.shape == (2, 3) and torch.equal(y, want) and torch.equal(a0, a)


def test_an_in_place_add_that_promotes_the_dtype_makes_a_new_tensor():
    """int32 codes + float, or half + float32: the sum is of the promoted dtype, as out of place."""
    b = torch.tensor([0.5, -1.5, 2.25])
    for a in (torch.tensor([1, 2, 3], dtype=torch.int32), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float16)):
        for fn, want in ((_add, a + b), (_add_relu, torch.relu(a + b))):
            a0 = a.clone()
            y = fn(a0, b, inplace=True)
            assert y.dtype == torch.float32 and torch.equal(y, want) and torch.equal(a0, a)


def test_an_in_place_add_of_a_broadcast_second_operand_writes_the_first():
    a, b = torch.full((2, 3), -2.0), torch.tensor([1.0, 2.0, 3.0])
    y = _add(a, b, inplace=True)
    assert y.data_ptr() == a.data_ptr() and torch.equal(y, torch.tensor([[-1.0, 0.0, 1.0]] * 2))


class _ReluThenResidual(torch.nn.Module):
    """A conv whose ReLU (folded into its epilogue) comes before the residual add + ReLU, read by a quantized conv."""

    def __init__(self, precisions):
        super().__init__()
        self.stem = QConv2d(3, 8, 3, padding=1, precisions=precisions)
        self.c1 = QConv2d(8, 8, 3, padding=1, precisions=precisions)
        self.head = QConv2d(8, 4, 1, precisions=precisions)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        z = torch.relu(torch.relu(self.c1(x)) + x)
        return torch.flatten(torch.nn.functional.adaptive_avg_pool2d(self.head(z), 1), 1)


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")
def test_a_conv_that_relus_its_own_output_keeps_that_relu_before_a_fused_residual():
    """The conv + add + relu step (qconv2d_residual) has no ReLU of the conv's output: a conv whose plan
    ReLUs runs alone, then the add + relu, so the logits are the step-by-step program's."""
    m = calibrated(_ReluThenResidual([4, 8]), (4, 3, 8, 8))
    im, unfused = convert(m), convert(m)
    unfused._compile(fuse=False)
    assert im.layers["c1"].plans[0].relu
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    for p in (4, 8):
        with dwq.precision(im, p), dwq.precision(unfused, p), torch.no_grad():
            assert torch.equal(im(x), unfused(x)), p
