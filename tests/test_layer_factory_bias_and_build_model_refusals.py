"""dwq.models' construction helpers: LayerFactory passes ``bias`` on to every layer kind it builds (quantized or
float, conv or linear; the zoo itself only builds bias-free convs and biased classifiers), canonical_network
takes a name with spaces around it, build_model refuses a network for images of the other channel count and
pretrained weights for a network other than resnet50 by name and gives the network the dataset's class
count; dataset_stats reads a name without its separators; Normalize refuses an input that is not
[N, C, H, W] even when its second size equals the channel count."""
import re

import pytest
import torch
from torch import nn

from dwq.models import DATASET_STATS, Normalize, QuantPolicy, build_model, canonical_network, dataset_stats
from dwq.models.common import LayerFactory
from dwq.nn import QConv2d, QLinear


@pytest.mark.parametrize("quantized", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_factory_passes_bias_to_convs_and_linears(quantized, bias):
    """conv(..., bias=b) and linear(..., bias=b) have a bias exactly when b, quantized or not."""
    make = LayerFactory([4, 8], QuantPolicy(), switchable_bn=True)
    conv = make.conv(quantized, 3, 4, 3, bias=bias)
    lin = make.linear(quantized, 5, 2, bias=bias)
    assert type(conv) is (QConv2d if quantized else nn.Conv2d) and type(lin) is (QLinear if quantized else nn.Linear)
    assert (conv.bias is not None) == bias, f"conv(quantized={quantized}, bias={bias}) has bias {conv.bias}"
    assert (lin.bias is not None) == bias, f"linear(quantized={quantized}, bias={bias}) has bias {lin.bias}"


def test_layer_factory_defaults_are_a_conv_without_bias_and_a_linear_with_one():
    make = LayerFactory([4, 8], QuantPolicy(), switchable_bn=False)
    for quantized in (True, False):
        assert make.conv(quantized, 3, 4, 3).bias is None and make.linear(quantized, 5, 2).bias is not None


@pytest.mark.parametrize("name", [" PreActResNet18 ", "\tsmall_cnn\n", "WRN-34-10 "])
def test_a_network_name_with_spaces_around_it_is_known(name):
    """A name read from a file or typed in quotes keeps its spaces; they are not part of the name."""
    assert canonical_network(name) == {"p": "preact_resnet18", "s": "small_cnn", "w": "wide_resnet34_10"}[
        name.strip()[0].lower()]


@pytest.mark.parametrize("network,dataset,message", [
    ("small_cnn", "cifar10", "small_cnn takes 1-channel 28x28 images (mnist5k), not cifar10"),
    ("preact_resnet18", "mnist5k", "preact_resnet18 takes RGB images; use small_cnn with mnist5k"),
])
def test_build_model_refuses_a_network_for_the_other_images(network, dataset, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        build_model(network, dataset, [4], True)


@pytest.mark.parametrize("network,dataset", [("preact_resnet18", "cifar10"), ("small_cnn", "mnist5k")])
def test_build_model_refuses_pretrained_weights_for_another_network(network, dataset, tmp_path):
    """--pretrained is resnet50's (a torchvision state_dict): another network refuses it by name, before the
    file is read (it need not exist)."""
    with pytest.raises(ValueError, match="pretrained weights are for resnet50 only"):
        build_model(network, dataset, [4], True, pretrained=str(tmp_path / "w.pth"))


@pytest.mark.parametrize("shape", [(1, 3, 1, 4, 4), (2, 3, 5), (3,)])
def test_normalize_refuses_an_input_that_is_not_four_dimensional(shape):
    """A 5-D [1, 3, 1, 4, 4] broadcast against the [1, 3, 1, 1] mean into a [1, 3, 3, 4, 4] result."""
    norm = Normalize([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match=re.escape(f"Normalize: expected input [N, 3, H, W], got {shape}")):
        norm(torch.rand(*shape))


@pytest.mark.parametrize("network,dataset,classes,shape", [
    ("small_cnn", "mnist5k", 10, (1, 1, 28, 28)),
    ("preact_resnet18", "cifar100", 100, (1, 3, 32, 32)),
])
def test_build_model_takes_the_class_count_of_the_dataset(network, dataset, classes, shape):
    """The classifier has one output per class of the dataset (10 for MNIST-5k, 100 for CIFAR-100)."""
    model, key = build_model(network, dataset, [4], True, width=4 if network == "small_cnn" else 32)
    assert key == network
    with torch.no_grad():  # (a train-mode batch: an untrained model warns in eval mode)
        out = model.train()(torch.rand(2, *shape[1:]))
    assert out.shape == (2, classes), f"{network} on {dataset}: logits {tuple(out.shape)}, want (2, {classes})"


@pytest.mark.parametrize("name,key", [("cifar_10", "cifar10"), ("CIFAR_100", "cifar100"), ("Mnist_5K", "mnist"),
                                      ("c-i_far10", "cifar10")])
def test_dataset_stats_ignores_underscores_and_hyphens(name, key):
    """Separators are not part of a dataset's name ("cifar_10" as "CIFAR-10"), as for network names."""
    assert dataset_stats(name) == DATASET_STATS[key]
