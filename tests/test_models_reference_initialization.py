"""The zoo networks start from their reference code's initialization, which a model trained from scratch
depends on: every conv (quantized or not) He-normal with fan_out = out_channels * k * k, i.e.
std = sqrt(2 / fan_out) (PreActResNet's kaiming_normal_(mode="fan_out"), WideResNet's normal_(0, sqrt(2 / n)),
torchvision ResNet's kaiming_normal_(mode="fan_out", nonlinearity="relu")); PreActResNet's linear
N(0, 0.001) with a zero bias; WideResNet's fc with a zero bias.
Small depths keep the models cheap; the per-layer rule is the same as in the full-size networks."""
import math

import pytest
import torch
from torch import nn

from dwq.models import PreActResNet, QuantPolicy, ResNet, WideResNet
from dwq.nn import QConv2d

# Each layer's sample std must be within this of the rule's; the smallest conv here has 432 weights
# (sample-std error about 3.4 %), while a fan_in instead of fan_out or a gain of 1 instead of 2 is
# off by a factor sqrt(2) or more somewhere in each network.
REL_TOL = 0.15


def _preact():
    return PreActResNet([1, 1, 1, 1], 10, [4, None], QuantPolicy(), True, None, None, "cifar10")


def _wide():
    return WideResNet(10, 2, 10, [4, None], QuantPolicy(), True, None, None, "cifar10")


def _resnet():
    return ResNet([1, 1, 1, 1], 10, [4, None], QuantPolicy(shortcut=True), True, None, None)


BUILDERS = {"preact_resnet": _preact, "wide_resnet": _wide, "resnet": _resnet}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_every_conv_is_he_normal_over_its_fan_out(name):
    """Each conv's weights have mean ~0 and std sqrt(2 / (out_channels * k * k)): not fan_in, not gain 1."""
    torch.manual_seed(0)
    model = BUILDERS[name]()
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert any(isinstance(m, QConv2d) for _, m in convs) and any(type(m) is nn.Conv2d for _, m in convs)
    bad = []
    for n, m in convs:
        fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
        want = math.sqrt(2.0 / fan_out)
        w = m.weight.detach().double()
        got = w.std().item()
        if abs(got / want - 1) > REL_TOL or abs(w.mean().item()) > 4 * want / math.sqrt(w.numel()):
            bad.append(f"{n}: std {got:.4g} mean {w.mean().item():.3g}, want std {want:.4g} (fan_out {fan_out})")
    assert not bad, f"{name}: convs not initialized as the reference's He-normal over fan_out:\n" + "\n".join(bad)


def test_preact_resnet_linear_is_normal_with_std_0_001_and_a_zero_bias():
    """PreActResNet's classifier: weight N(0, 0.001) (the reference's), bias exactly zero."""
    torch.manual_seed(0)
    lin = _preact().linear
    std = lin.weight.detach().double().std().item()
    assert abs(std / 0.001 - 1) < 0.1, f"linear weight std {std:.4g}, want 0.001"
    assert torch.equal(lin.bias, torch.zeros_like(lin.bias)), f"linear bias not zero: {lin.bias.detach()[:4].tolist()}"


def test_wide_resnet_fc_bias_starts_at_zero():
    """WideResNet zeroes its fc bias (the weight keeps torch's default, as in the reference)."""
    torch.manual_seed(0)
    fc = _wide().fc
    assert torch.equal(fc.bias, torch.zeros_like(fc.bias)), f"fc bias not zero: {fc.bias.detach()[:4].tolist()}"
    assert fc.weight.abs().max() <= 1 / math.sqrt(fc.in_features), "fc weight is not torch's default uniform"
