"""PreActResNet-18 for 32x32 inputs (CIFAR-10/100, SVHN), laid out as the reference code's.

Module names match the reference (``conv1``, ``layer1.0.bn1``, ``layer2.0.shortcut``, ``bn``,
``linear``), so its checkpoints map key for key (see :mod:`dwq.models.reference_import`).
"""
from typing import Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn import init

from dwq.models.common import (
    LayerFactory,
    QuantPolicy,
    check_num_classes,
    default_precisions,
    make_normalize,
)

__all__ = ["PreActBlock", "PreActResNet", "preact_resnet18"]


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus the (projected) input."""

    expansion = 1

    def __init__(self, make: LayerFactory, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = make.bn(in_planes)
        self.conv1 = make.conv(True, in_planes, planes, 3, stride=stride, padding=1)
        self.bn2 = make.bn(planes)
        self.conv2 = make.conv(True, planes, planes, 3, stride=1, padding=1)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            # The reference feeds the shortcut the block input before BN-ReLU.
            self.shortcut = make.conv(make.policy.shortcut, in_planes, planes, 1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(x) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet: normalize, conv3x3 stem, four stages, BN-ReLU, global pool, linear."""

    def __init__(self, num_blocks: Sequence[int], num_classes: int, precisions, policy: QuantPolicy,
                 switchable_bn: bool, mean, std, dataset: str):
        super().__init__()
        make = LayerFactory(precisions, policy, switchable_bn)
        self.policy = policy
        self.normalize = make_normalize(mean, std, dataset, 3)
        self.conv1 = make.conv(policy.first_conv, 3, 64, 3, stride=1, padding=1)
        in_planes = 64
        stages = []
        for planes, n, stride in zip((64, 128, 256, 512), num_blocks, (1, 2, 2, 2)):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(PreActBlock(make, in_planes, planes, s))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = make.bn(512)
        self.linear = make.linear(policy.classifier, 512, num_classes)
        self._init_params()

    def _init_params(self):
        # The reference's initialization.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                init.ones_(m.weight)
                init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [N, 3, H, W] in [0, 1] (32x32 for CIFAR); returns logits [N, num_classes]."""
        out = self.conv1(self.normalize(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        # Global average pooling; equals the reference's avg_pool2d(out, 4) on 32x32 inputs.
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def preact_resnet18(num_classes: int = 10, precisions: Optional[Sequence] = None,
                    policy: Optional[QuantPolicy] = None, switchable_bn: bool = True,
                    mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                    dataset: Optional[str] = None) -> PreActResNet:
    """PreActResNet-18 as in the reference code (CIFAR, 32x32 inputs in [0, 1]).

    precisions: the precision set (default 4..16, the paper's RPT set; ``[None]`` for a float model).
    policy: which layers are quantized (default ``QuantPolicy()``: only the 3x3 block convs; the
    stem conv, 1x1 shortcuts and classifier stay full precision, as in the reference).
    switchable_bn: one BN per precision (True) or one plain BN for all precisions.
    mean/std: of the in-model Normalize; default: the statistics of ``dataset`` ("cifar10",
    "cifar100", "svhn"), which defaults to "cifar100" when ``num_classes == 100``, else "cifar10".
    """
    num_classes = check_num_classes(num_classes)
    if dataset is None:
        dataset = "cifar100" if num_classes == 100 else "cifar10"
    policy = QuantPolicy() if policy is None else policy
    return PreActResNet([2, 2, 2, 2], num_classes, default_precisions(precisions), policy, switchable_bn, mean, std,
                        dataset)
