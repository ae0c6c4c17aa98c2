"""What the model constructors pass on: a quantized classifier gets the policy's zero point and shared
range like the convs; Normalize refuses an image with another number of channels by name and a
standard deviation of 0."""
import pytest
import torch

from dwq.models import Normalize, QuantPolicy, dataset_stats, small_cnn


def test_a_quantized_classifier_follows_the_policy():
    model = small_cnn(precisions=[4, 8], width=4, policy=QuantPolicy(classifier=True, zero_point="float",
                                                                      shared_act_range=True))
    assert model.fc.input_quant.zero_point == "float" == model.conv2.input_quant.zero_point
    assert model.fc.input_quant.running_min.numel() == 1
    model = small_cnn(precisions=[4, 8], width=4, policy=QuantPolicy(classifier=True))
    assert model.fc.input_quant.zero_point == "int" and model.fc.input_quant.running_min.numel() == 3


def test_normalize_names_a_wrong_channel_count_and_refuses_a_zero_std():
    model = small_cnn(precisions=[None], width=4)
    with pytest.raises(ValueError, match=r"Normalize: expected input \[N, 1, H, W\], got \(2, 3, 28, 28\)"):
        model(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="std finite and positive"):
        Normalize([0.5], [0.0])


def test_dataset_stats_takes_the_dataset_names_of_the_cli():
    assert dataset_stats("mnist5k") == dataset_stats("MNIST") == dataset_stats("mnist")
    assert dataset_stats("CIFAR-10") == dataset_stats("cifar10")
