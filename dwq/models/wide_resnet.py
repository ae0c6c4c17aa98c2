"""WideResNet-34-10 for 32x32 inputs (the paper's "WRN-32"), laid out as the reference code's.

Module names follow the reference (``conv1``, ``block1.layer.0.bn1``, ``bn1``, ``fc``) except the
projection shortcut, ``shortcut`` here and ``convShortcut`` there (the checkpoint import renames it).
"""
import math
from typing import Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dwq.models.common import (
    LayerFactory,
    QuantPolicy,
    check_num_classes,
    default_precisions,
    make_normalize,
)

__all__ = ["WideBasicBlock", "WideResNet", "wide_resnet34_10"]


class WideBasicBlock(nn.Module):
    """Pre-activation wide block. When the width changes, BN-ReLU of the input feeds both the
    3x3 conv and the 1x1 projection shortcut; otherwise the raw input is the residual."""

    def __init__(self, make: LayerFactory, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.bn1 = make.bn(in_planes)
        self.conv1 = make.conv(True, in_planes, out_planes, 3, stride=stride, padding=1)
        self.bn2 = make.bn(out_planes)
        self.conv2 = make.conv(True, out_planes, out_planes, 3, stride=1, padding=1)
        self.equal_in_out = in_planes == out_planes
        self.shortcut = None
        if not self.equal_in_out:
            self.shortcut = make.conv(make.policy.shortcut, in_planes, out_planes, 1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        out = self.conv1(act)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + (x if self.equal_in_out else self.shortcut(act))


class NetworkBlock(nn.Module):
    """A stage of ``n`` wide blocks, kept as ``.layer`` for the reference's key names."""

    def __init__(self, make: LayerFactory, n: int, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(*[
            WideBasicBlock(make, in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1)
            for i in range(n)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WideResNet-depth-widen: normalize, conv3x3 stem, three stages, BN-ReLU, global pool, fc."""

    def __init__(self, depth: int, widen_factor: int, num_classes: int, precisions, policy: QuantPolicy,
                 switchable_bn: bool, mean, std, dataset: str):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        make = LayerFactory(precisions, policy, switchable_bn)
        self.policy = policy
        self.normalize = make_normalize(mean, std, dataset, 3)
        self.conv1 = make.conv(policy.first_conv, 3, widths[0], 3, stride=1, padding=1)
        self.block1 = NetworkBlock(make, n, widths[0], widths[1], 1)
        self.block2 = NetworkBlock(make, n, widths[1], widths[2], 2)
        self.block3 = NetworkBlock(make, n, widths[2], widths[3], 2)
        self.bn1 = make.bn(widths[3])
        self.fc = make.linear(policy.classifier, widths[3], num_classes)
        for m in self.modules():  # the reference's initialization
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [N, 3, H, W] in [0, 1]; returns logits [N, num_classes]."""
        out = self.conv1(self.normalize(x))
        out = self.block3(self.block2(self.block1(out)))
        out = F.relu(self.bn1(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)  # = avg_pool2d(out, 8) on 32x32 inputs
        return self.fc(out)


def wide_resnet34_10(num_classes: int = 10, precisions: Optional[Sequence] = None,
                     policy: Optional[QuantPolicy] = None, switchable_bn: bool = True,
                     mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                     dataset: Optional[str] = None) -> WideResNet:
    """WideResNet depth 34, widen factor 10 (46.2 M parameters), the reference's "WideResNet32".

    Arguments as :func:`dwq.models.preact_resnet18`: default policy quantizes only the 3x3 block
    convs; default normalization is CIFAR-100's when ``num_classes == 100``, else CIFAR-10's.
    """
    num_classes = check_num_classes(num_classes)
    if dataset is None:
        dataset = "cifar100" if num_classes == 100 else "cifar10"
    return WideResNet(34, 10, num_classes, default_precisions(precisions), QuantPolicy() if policy is None else policy,
                      switchable_bn, mean, std, dataset)
