"""dwq.data: dataset names in any case, the class-folder difference's truncation, and an ImageNet folder
with exactly as many classes as the model has outputs."""
import dataclasses

import pytest

import dwq.data as D
from conftest import torchvision_or_skip
from dwq.data import class_folder_difference, dataset_info, get_datasets, reference_stats
from test_data import _image_folders


@pytest.mark.parametrize("name", ["CIFAR10", "Mnist5k", "ImageNet", "SVHN"])
def test_a_dataset_name_is_taken_in_any_case(name):
    assert dataset_info(name) is D.DATASETS[name.lower()]
    assert reference_stats(name) == reference_stats(name.lower())


def test_reference_stats_use_cifar10_s_for_cifar100_only():
    c10 = (dataset_info("cifar10").mean, dataset_info("cifar10").std)
    assert reference_stats("cifar100") == c10 != (dataset_info("cifar100").mean, dataset_info("cifar100").std)
    assert reference_stats("svhn") == (dataset_info("svhn").mean, dataset_info("svhn").std)


def test_class_folder_difference_names_at_most_most_folders_each():
    assert class_folder_difference(list("abcde"), [], "missing", "extra") == "missing: a, b, c, d, e (5)"
    assert class_folder_difference(list("fabcde"), [], "missing", "extra") == "missing: a, b, c, d, e ... (6)"
    assert class_folder_difference(["a"], list("bcd"), "missing", "extra", most=3) == "missing: a (1); extra: b, c, d (3)"
    assert class_folder_difference(list("abcd"), ["x"], "m", "e", most=3) == "m: a, b, c ... (4); e: x (1)"
    assert class_folder_difference(["a", "b"], ["b", "a"], "m", "e") == "another order"


def test_as_many_class_folders_as_outputs_is_accepted(tmp_path, monkeypatch):
    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    monkeypatch.setitem(D.DATASETS, "imagenet", dataclasses.replace(D.DATASETS["imagenet"], num_classes=2))
    _image_folders(tmp_path)  # n01, n02 in train/ and val/
    train, test, _ = get_datasets("imagenet", str(tmp_path))
    assert train.classes == test.classes == ["n01", "n02"]
