"""WideResNet's forward against the reference's equations (Zagoruyko's WRN as the reference code has it),
written over the state_dict: where the width changes, BN-ReLU of the block input feeds both the 3x3 conv
and the 1x1 projection shortcut; otherwise the raw input is the residual; the network ends in BN-ReLU,
global average pooling and the linear layer. Full precision, so every difference is the wiring's."""
import torch
from torch import nn
from torch.nn import functional as F

from dwq.models import QuantPolicy, WideResNet


def _model():
    model = WideResNet(10, 2, 10, [None], QuantPolicy(), False, None, None, "cifar10")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # statistics and affine that are not the identity
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.3 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
        model.fc.bias.copy_(torch.randn(model.fc.bias.shape, generator=g))
    return model.eval()


def _reference_forward(sd, x, mean, std):
    def bn_relu(t, name):
        return F.relu(F.batch_norm(t, sd[name + ".running_mean"], sd[name + ".running_var"], sd[name + ".weight"],
                                   sd[name + ".bias"], training=False, eps=1e-5))

    out = F.conv2d((x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1), sd["conv1.weight"], padding=1)
    for stage, stride in ((1, 1), (2, 2), (3, 2)):
        b = f"block{stage}.layer.0"
        act = bn_relu(out, b + ".bn1")
        o = F.conv2d(act, sd[b + ".conv1.weight"], stride=stride, padding=1)
        o = F.conv2d(bn_relu(o, b + ".bn2"), sd[b + ".conv2.weight"], padding=1)
        short = F.conv2d(act, sd[b + ".shortcut.weight"], stride=stride) if b + ".shortcut.weight" in sd else out
        out = o + short
    out = bn_relu(out, "bn1")
    return F.linear(F.adaptive_avg_pool2d(out, 1).flatten(1), sd["fc.weight"], sd["fc.bias"])


def test_wide_resnet_forward_matches_the_reference_equations():
    model = _model()
    sd = model.state_dict()
    assert {k for k in sd if ".shortcut." in k} == {f"block{i}.layer.0.shortcut.weight" for i in (1, 2, 3)}
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model(x)
        want = _reference_forward(sd, x, model.normalize.mean, model.normalize.std)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_wide_block_with_equal_widths_adds_its_raw_input():
    # WRN-16-2: the second block of each stage keeps its width (32 -> 32 in stage 1): no projection
    same = WideResNet(16, 2, 10, [None], QuantPolicy(), False, None, None, "cifar10").eval().block1.layer[1]
    assert same.shortcut is None
    x = torch.randn(2, 32, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = same.conv2(F.relu(same.bn2(same.conv1(F.relu(same.bn1(x)))))) + x
        torch.testing.assert_close(same(x), want)
