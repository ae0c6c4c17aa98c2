"""ResNet-50 for ImageNet in the torchvision layout (Bottleneck v1.5: stride on the 3x3 conv).

Module names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``,
``fc``) plus ``normalize``; switchable BNs put each branch under ``<bn>.bn.<i>``, as the
reference code does. :func:`load_torchvision_state_dict` copies a standard torchvision ResNet-50
state_dict into this layout, every BN into every branch.
"""
import os
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from dwq._torch_file import torch_load

from dwq.models.common import (
    LayerFactory,
    QuantPolicy,
    check_num_classes,
    default_precisions,
    make_normalize,
)

__all__ = ["Bottleneck", "ResNet", "resnet50", "load_torchvision_state_dict"]


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, make: LayerFactory, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = make.conv(True, inplanes, planes, 1)
        self.bn1 = make.bn(planes)
        self.conv2 = make.conv(True, planes, planes, 3, stride=stride, padding=1)
        self.bn2 = make.bn(planes)
        self.conv3 = make.conv(True, planes, planes * self.expansion, 1)
        self.bn3 = make.bn(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Bottleneck ResNet (torchvision's layout) with quantized convs where ``policy`` says; built by
    :func:`resnet50`."""

    def __init__(self, layers: Sequence[int], num_classes: int, precisions, policy: QuantPolicy,
                 switchable_bn: bool, mean, std):
        super().__init__()
        make = LayerFactory(precisions, policy, switchable_bn)
        self.policy = policy
        self.normalize = make_normalize(mean, std, "imagenet", 3)
        self.conv1 = make.conv(policy.first_conv, 3, 64, 7, stride=2, padding=3)
        self.bn1 = make.bn(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        stages = []
        for planes, n, stride in zip((64, 128, 256, 512), layers, (1, 2, 2, 2)):
            blocks = []
            for i in range(n):
                s = stride if i == 0 else 1
                downsample = None
                if i == 0 and (s != 1 or inplanes != planes * Bottleneck.expansion):
                    downsample = nn.Sequential(
                        make.conv(policy.shortcut, inplanes, planes * Bottleneck.expansion, 1, stride=s),
                        make.bn(planes * Bottleneck.expansion),
                    )
                blocks.append(Bottleneck(make, inplanes, planes, s, downsample))
                inplanes = planes * Bottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = make.linear(policy.classifier, 512 * Bottleneck.expansion, num_classes)
        for m in self.modules():  # torchvision's initialization
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [N, 3, H, W] in [0, 1] (224x224 for ImageNet); returns logits [N, num_classes]."""
        out = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(torch.flatten(self.avgpool(out), 1))


def resnet50(num_classes: int = 1000, precisions: Optional[Sequence] = None, policy: Optional[QuantPolicy] = None,
             switchable_bn: bool = True, mean: Optional[Sequence[float]] = None,
             std: Optional[Sequence[float]] = None, weights_path: Optional[str] = None) -> ResNet:
    """ResNet-50 (torchvision layout) for ImageNet, 224x224 inputs in [0, 1].

    precisions: the precision set (default 4..16). policy: default ``QuantPolicy(shortcut=True)``,
    as in the reference: every conv except the 7x7 stem is quantized, downsample 1x1s included; the
    fc stays full precision. mean/std default to ImageNet's.
    weights_path: a local file holding a standard torchvision ResNet-50 state_dict (or a checkpoint
    dict with a ``state_dict`` entry); loaded with :func:`load_torchvision_state_dict`.
    """
    num_classes = check_num_classes(num_classes)
    sd = None
    if weights_path is not None:  # read first: a bad file fails before 25 M parameters are initialized
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(f"resnet50: weights_path {weights_path!r} is not a file")
        # A damaged file failed with torch's bare KeyError or EOFError, which named neither the file nor
        # the flag (--pretrained) and escaped the CLI's one-line errors.
        sd = torch_load(weights_path, RuntimeError, "torchvision state_dict",
                        "a torch.save file of a torchvision ResNet-50 state_dict")
        if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
            sd = sd["state_dict"]
    policy = QuantPolicy(shortcut=True) if policy is None else policy
    model = ResNet([3, 4, 6, 3], num_classes, default_precisions(precisions), policy, switchable_bn, mean, std)
    if sd is not None:
        load_torchvision_state_dict(model, sd)
    return model


def load_torchvision_state_dict(model: nn.Module, state_dict: Dict[str, torch.Tensor]) -> nn.Module:
    """Loads a float ResNet state_dict (torchvision key names) into a dwq model of the same layout.

    Each BatchNorm entry (``bn1.weight``, ``downsample.1.running_mean``, ...) is copied into every
    branch of the corresponding switchable BN (``bn1.bn.<i>.weight``), or into the plain BN when the
    model has ``switchable_bn=False``. A ``module.`` prefix is stripped. Entries the torchvision
    file cannot have keep the model's values: ``normalize.*``, ``precision_set`` and the activation
    ranges (``input_quant.*``; they start uninitialized, i.e. the first train-mode batches at each
    precision set them; eval mode uses the batch range until then). Any other missing or unexpected
    key, or a shape mismatch (e.g. another ``num_classes``), raises RuntimeError.
    """
    from dwq.models.reference_import import expand_plain_state_dict

    target = expand_plain_state_dict(model, state_dict, source="torchvision state_dict")
    model.load_state_dict(target, strict=True)
    return model
