"""PreActResNet-18 and WideResNet-34-10 as their constructors build them: the default in-model
normalization follows num_classes (CIFAR-100's statistics for 100 classes only, CIFAR-10's otherwise),
PreActResNet-18's parameter count by hand, its feature-map size stage by stage (two blocks per stage:
only the first one strides) and the pre-activation order inside both kinds of its blocks."""
import pytest
import torch
from torch.nn import functional as F

from dwq.models import preact_resnet18, wide_resnet34_10
from test_model_layer_geometry import _output_shapes
from test_reference_import import _randomize

CIFAR10_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR100_MEAN = [0.5071, 0.4865, 0.4409]


@pytest.mark.parametrize("num_classes,mean", [(100, CIFAR100_MEAN), (10, CIFAR10_MEAN)])
def test_wide_resnet34_10_default_normalization_follows_num_classes(num_classes, mean):
    """wide_resnet34_10 normalizes with CIFAR-100's statistics for 100 classes, CIFAR-10's otherwise."""
    model = wide_resnet34_10(num_classes=num_classes, precisions=[None], switchable_bn=False)
    got = model.normalize.mean.tolist()
    assert got == pytest.approx(mean, abs=1e-4), f"{num_classes} classes: normalize mean {got}, want {mean}"


def test_preact_resnet18_uses_cifar100_statistics_only_for_100_classes():
    """Any class count other than 100 (here 200) keeps CIFAR-10's statistics, as documented."""
    got = preact_resnet18(num_classes=200, precisions=[None], switchable_bn=False).normalize.mean.tolist()
    assert got == pytest.approx(CIFAR10_MEAN, abs=1e-4), f"200 classes: normalize mean {got}, want CIFAR-10's"


def test_preact_resnet18_parameter_count_by_hand():
    """Bias-free convs, BN affine pairs (bn1 on the block input, bn2 on its output, a final bn), 1x1 projections
    where a stage starts, a 512 -> num_classes linear."""
    model = preact_resnet18(num_classes=10, precisions=[None], switchable_bn=False)
    stem = 3 * 64 * 9
    convs = bns = shortcuts = 0
    cin = 64
    for c in (64, 128, 256, 512):
        convs += cin * c * 9 + 3 * c * c * 9  # four 3x3 convs per stage
        bns += 2 * (cin + 3 * c)  # bn1 of each block sees its input, bn2 its width
        shortcuts += cin * c if cin != c else 0
        cin = c
    want = stem + convs + bns + shortcuts + 2 * 512 + 512 * 10 + 10
    got = sum(p.numel() for p in model.parameters())
    assert got == want == 11_172_170, f"PreActResNet-18 has {got} parameters, by hand {want}"


def test_preact_resnet18_feature_maps_stage_by_stage():
    """32x32 input: the stem keeps the size; each stage after the first halves it once, in its first block's
    conv1 and shortcut; the second block of a stage keeps size and width."""
    model = preact_resnet18(num_classes=10, precisions=[None], switchable_bn=False)
    want = {"conv1": (64, 32, 32), "layer1.0": (64, 32, 32), "layer1.1": (64, 32, 32)}
    for stage, (c, hw) in enumerate(((128, 16), (256, 8), (512, 4)), start=2):
        for name in ("0.conv1", "0.conv2", "0.shortcut", "0", "1.conv1", "1"):
            want[f"layer{stage}.{name}"] = (c, hw, hw)
    want["linear"] = (10,)
    got = _output_shapes(model, torch.rand(1, 3, 32, 32), list(want))
    assert got == want, {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    assert model.layer1[0].shortcut is None and model.layer2[1].shortcut is None


@pytest.mark.parametrize("block,in_ch,hw", [("layer2.0", 64, 8), ("layer2.1", 128, 4)])
def test_preact_block_is_bn_relu_conv_twice_plus_the_raw_input(block, in_ch, hw):
    """BN-ReLU-conv1-BN-ReLU-conv2, added to the block's raw input (through the strided 1x1 projection where the
    stage starts, as-is in the second block): the reference's PreActBlock."""
    model = _randomize(preact_resnet18(num_classes=10, precisions=[None], switchable_bn=False), seed=0)
    b = dict(model.named_modules())[block]
    x = torch.randn(2, in_ch, hw, hw, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = b.conv2(F.relu(b.bn2(b.conv1(F.relu(b.bn1(x))))))
        want = out + (b.shortcut(x) if b.shortcut is not None else x)
        torch.testing.assert_close(b(x), want, rtol=1e-5, atol=1e-5)
