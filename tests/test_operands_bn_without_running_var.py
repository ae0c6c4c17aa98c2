"""dwq.deploy.operands.bn_affine: a batch norm that lost its running variance (but kept its mean) has no
fixed affine either, and is refused naming the layer (found by mutation: only the mean was checked,
and the variance's absence was a TypeError from inside the arithmetic)."""
import pytest
import torch
from torch import nn

from dwq.deploy.operands import ConversionError, bn_affine


def test_a_batch_norm_without_its_running_variance_is_a_conversion_error():
    bn = nn.BatchNorm2d(3).eval()
    bn.running_var = None  # (torch's own eval forward refuses it: "running_var must be defined")
    with pytest.raises(RuntimeError, match="running_var"):
        bn(torch.rand(1, 3, 2, 2))
    with pytest.raises(ConversionError, match="blk.bn: a batch norm without running statistics"):
        bn_affine(bn, "blk.bn")
