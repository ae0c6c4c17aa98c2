"""Layer geometry of the zoo's networks, derived by hand: each layer's output shape at a given input
size (strides, padding, pooling) and parameter counts. The networks end in a global average pool, so a
wrong stride, a lost pooling or a stride on the wrong conv still gives logits of the right shape and
the same parameter count: only the shapes inside tell."""
import pytest
import torch

from dwq.models import QuantPolicy, ResNet, WideResNet, small_cnn


def _output_shapes(model, x, names):
    """{name: output shape (C, H, W) of that submodule} for one forward of ``x`` (batch 1)."""
    shapes, hooks = {}, []
    modules = dict(model.named_modules())
    for name in names:
        hooks.append(modules[name].register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:]))))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def test_small_cnn_keeps_28x28_in_conv1_and_pools_twice():
    model = small_cnn(precisions=[None], switchable_bn=False, width=4)
    got = _output_shapes(model, torch.rand(1, 1, 28, 28), ["conv1", "conv2", "conv3", "fc"])
    # 3x3 convs with padding 1 keep the size; a 2x2 max-pool after conv1 and after conv2 halves it
    assert got == {"conv1": (4, 28, 28), "conv2": (8, 14, 14), "conv3": (16, 7, 7), "fc": (10,)}


def test_small_cnn_parameter_count_at_width_32():
    model = small_cnn(precisions=[None], switchable_bn=False)
    # convs without bias: 1*32*9 + 32*64*9 + 64*128*9; BN affine 2*(32+64+128); fc 128*10 + 10
    want = 288 + 18_432 + 73_728 + 2 * (32 + 64 + 128) + 1_290
    assert sum(p.numel() for p in model.parameters()) == want == 94_186


def _wrn(depth):
    return WideResNet(depth, 1, 10, [None], QuantPolicy(), False, None, None, "cifar10")


def test_wide_resnet_stages_halve_the_size_once_each_in_their_first_block():
    model = _wrn(16)  # two blocks per stage: the second one of a stage must not stride
    names = ["conv1", "block1.layer.0", "block1.layer.1", "block2.layer.0", "block2.layer.1",
             "block2.layer.0.shortcut", "block3.layer.0", "block3.layer.1", "fc"]
    got = _output_shapes(model, torch.rand(1, 3, 32, 32), names)
    assert got == {"conv1": (16, 32, 32), "block1.layer.0": (16, 32, 32), "block1.layer.1": (16, 32, 32),
                   "block2.layer.0": (32, 16, 16), "block2.layer.1": (32, 16, 16),
                   "block2.layer.0.shortcut": (32, 16, 16),
                   "block3.layer.0": (64, 8, 8), "block3.layer.1": (64, 8, 8), "fc": (10,)}


def test_wide_resnet_depth_must_be_6n_plus_4():
    for depth in (12, 33, 35):
        with pytest.raises(ValueError, match=f"WideResNet depth must be 6n\\+4, got {depth}"):
            _wrn(depth)
    assert len(_wrn(16).block1.layer) == 2 and len(_wrn(10).block3.layer) == 1


def test_resnet_bottleneck_strides_on_its_3x3_conv_and_the_stem_pools():
    """torchvision's layout (Bottleneck v1.5): the 7x7/2 stem, a 3x3/2 max-pool, then the stride of a
    stage on the first block's 3x3 conv (not its first 1x1) and on its downsample conv."""
    model = ResNet([2, 1, 1, 1], 10, [None], QuantPolicy(shortcut=True), False, None, None)
    names = ["conv1", "maxpool", "layer1.0", "layer1.1", "layer2.0.conv1", "layer2.0.conv2", "layer2.0.conv3",
             "layer2.0.downsample", "layer3.0", "layer4.0", "fc"]
    got = _output_shapes(model, torch.rand(1, 3, 64, 64), names)
    assert got == {"conv1": (64, 32, 32), "maxpool": (64, 16, 16), "layer1.0": (256, 16, 16),
                   "layer1.1": (256, 16, 16), "layer2.0.conv1": (128, 16, 16), "layer2.0.conv2": (128, 8, 8),
                   "layer2.0.conv3": (512, 8, 8), "layer2.0.downsample": (512, 8, 8),
                   "layer3.0": (1024, 4, 4), "layer4.0": (2048, 2, 2), "fc": (10,)}
