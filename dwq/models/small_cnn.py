"""A small CNN for 28x28 single-channel inputs (MNIST), quick enough for tests and demos.

normalize -> conv1 3x3 (1->32) -> BN-ReLU -> maxpool -> conv2 3x3 (32->64) -> BN-ReLU -> maxpool
-> conv3 3x3 (64->128) -> BN-ReLU -> global average pool -> fc (128->num_classes).
conv2 and conv3 are the quantized body; conv1 and fc follow the policy (full precision by default).
"""
from typing import Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dwq._index import index_or_none
from dwq.models.common import (
    LayerFactory,
    QuantPolicy,
    check_num_classes,
    default_precisions,
    make_normalize,
)

__all__ = ["SmallCNN", "small_cnn"]


class SmallCNN(nn.Module):
    """The module docstring's network; built by :func:`small_cnn`."""

    def __init__(self, num_classes: int, precisions, policy: QuantPolicy, switchable_bn: bool, mean, std,
                 width: int = 32):
        super().__init__()
        make = LayerFactory(precisions, policy, switchable_bn)
        self.policy = policy
        self.normalize = make_normalize(mean, std, "mnist", 1)
        self.conv1 = make.conv(policy.first_conv, 1, width, 3, padding=1)
        self.bn1 = make.bn(width)
        self.conv2 = make.conv(True, width, 2 * width, 3, padding=1)
        self.bn2 = make.bn(2 * width)
        self.conv3 = make.conv(True, 2 * width, 4 * width, 3, padding=1)
        self.bn3 = make.bn(4 * width)
        self.fc = make.linear(policy.classifier, 4 * width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [N, 1, 28, 28] in [0, 1]; returns logits [N, num_classes]."""
        out = F.max_pool2d(F.relu(self.bn1(self.conv1(self.normalize(x)))), 2)
        out = F.max_pool2d(F.relu(self.bn2(self.conv2(out))), 2)
        out = F.relu(self.bn3(self.conv3(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def small_cnn(num_classes: int = 10, precisions: Optional[Sequence] = None, policy: Optional[QuantPolicy] = None,
              switchable_bn: bool = True, mean: Optional[Sequence[float]] = None,
              std: Optional[Sequence[float]] = None, width: int = 32) -> SmallCNN:
    """Small CNN for MNIST-like 28x28x1 inputs in [0, 1] (94 k parameters at width 32 with one BN branch, 7.5 M MACs).

    precisions: the precision set (default 4..16). policy: default ``QuantPolicy()`` (conv2/conv3
    quantized; conv1 and fc full precision). mean/std default to MNIST's (0.1307,)/(0.3081,).
    """
    num_classes = check_num_classes(num_classes)
    w = index_or_none(width)  # (numpy ints too, as num_classes)
    if w is None or w < 1:
        # 0 built a model without channels, -1 failed in torch's tensor allocation, 2.5 in its group check.
        raise ValueError(f"width must be a positive int (channels of the first conv), got {width!r}")
    width = w
    policy = QuantPolicy() if policy is None else policy
    return SmallCNN(num_classes, default_precisions(precisions), policy, switchable_bn, mean, std, width)
