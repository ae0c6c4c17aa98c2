"""dwq.deploy.operands: a batch norm without running statistics has no fixed affine (found by mutation)."""
import pytest
import torch
from torch import nn

from dwq.deploy.operands import ConversionError, bn_affine


def test_a_batch_norm_without_running_statistics_is_a_conversion_error():
    """BatchNorm2d(track_running_stats=False) normalizes each eval batch with its own statistics: the
    refusal names the layer (not an AttributeError on its missing running_var)."""
    bn = nn.BatchNorm2d(3, track_running_stats=False).eval()
    with pytest.raises(ConversionError, match="blk.bn: a batch norm without running statistics"):
        bn_affine(bn, "blk.bn")


def test_bn_affine_is_the_eval_forward():
    bn = nn.BatchNorm2d(3).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
        bn.weight.copy_(torch.tensor([1.5, -2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.1, 0.2, -0.3]))
    a, b = bn_affine(bn)
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.view(1, -1, 1, 1) * x + b.view(1, -1, 1, 1), bn(x))


def test_a_batch_norm_that_stopped_tracking_but_has_its_statistics_is_converted():
    """torch's eval forward uses the running buffers wherever they exist, whatever track_running_stats
    says now; bn_affine refused such a layer as one without statistics."""
    bn = nn.BatchNorm2d(3).eval()
    with torch.no_grad():
        bn.running_mean.fill_(5.0)
    bn.track_running_stats = False
    a, b = bn_affine(bn)
    x = torch.randn(4, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.view(1, -1, 1, 1) * x + b.view(1, -1, 1, 1), bn(x))
