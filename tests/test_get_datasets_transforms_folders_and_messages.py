"""dwq.data.get_datasets beyond the existing checks: ImageNet's test transform (Resize(256), CenterCrop(224)),
an unaugmented ImageNet training set, an evaluation of a copy with val/ only, the folder named when an
evaluation's val/ has too many classes, CIFAR training sets carrying their eval_transform, the expected
layout when no folder is given, torchvision's download advice dropped, and big-endian 16-bit images."""
import dataclasses
import shutil

import numpy as np
import pytest
import torch

import dwq.data as D
from conftest import torchvision_or_skip
from dwq.data import DatasetError, get_datasets
from test_data import _image_folders


def _fake_cifar(monkeypatch, name, error=None):
    """A stand-in for torchvision's CIFAR class of ``name`` (no files read); ``error``: what it raises."""
    import torchvision.datasets as tvd

    real = getattr(tvd, name)

    class Cifar:
        base_folder, train_list, test_list = real.base_folder, [], []
        meta = {"filename": "batches.meta", "md5": None}

        def __init__(self, root, train, transform, download):
            if error is not None:
                raise error
            self.transform = transform

    monkeypatch.setattr(tvd, name, Cifar)
    return Cifar


def test_imagenets_test_transform_resizes_to_256_then_crops_the_center_224(tmp_path):
    """A 256x256 image is left as it is by Resize(256): its test view is its central 224x224 pixels."""
    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    from PIL import Image

    _image_folders(tmp_path)
    _, test, _ = get_datasets("imagenet", str(tmp_path), test_only=True)
    pixels = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    want = torch.from_numpy(pixels[16:240, 16:240]).permute(2, 0, 1).float() / 255
    got = test.transform(Image.fromarray(pixels))
    assert got.shape == (3, 224, 224) and torch.allclose(got, want, atol=1e-6), "not Resize(256) + CenterCrop(224)"


def test_an_unaugmented_imagenet_training_set_reads_with_the_test_transform(tmp_path):
    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    _image_folders(tmp_path)
    train, test, _ = get_datasets("imagenet", str(tmp_path), augment=False)
    views = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        views.append(train[0][0])
    assert torch.equal(views[0], views[1]), "augment=False still crops or flips at random"
    assert torch.equal(views[0], test.transform(test.loader(train.samples[0][0])))


def test_an_imagenet_evaluation_needs_val_only(tmp_path):
    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    _image_folders(tmp_path)
    shutil.rmtree(tmp_path / "train")
    train, test, _ = get_datasets("imagenet", str(tmp_path), test_only=True)
    assert train is None and len(test) == 4 and test.classes == ["n01", "n02"]


def test_an_evaluations_val_with_too_many_classes_names_val(tmp_path, monkeypatch):
    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    monkeypatch.setitem(D.DATASETS, "imagenet", dataclasses.replace(D.DATASETS["imagenet"], num_classes=2))
    _image_folders(tmp_path, ("n01",), ("n01", "n02", "n03"))
    with pytest.raises(DatasetError, match=f"imagenet: {tmp_path / 'val'} has 3 class folders; the model has 2 "
                                           f"outputs"):
        get_datasets("imagenet", str(tmp_path), test_only=True)


@pytest.mark.parametrize("name, cls, folder", [("cifar10", "CIFAR10", "cifar-10-batches-py"),
                                               ("cifar100", "CIFAR100", "cifar-100-python")])
def test_a_cifar_training_set_carries_the_test_transform_as_eval_transform(tmp_path, monkeypatch, name, cls, folder):
    """train_val_split gives its validation part eval_transform: without it validation is augmented."""
    torchvision_or_skip("CIFAR is read by torchvision")
    _fake_cifar(monkeypatch, cls)
    (tmp_path / folder).mkdir()
    train, test, _ = get_datasets(name, str(tmp_path))
    assert train.eval_transform is test.transform, "the CIFAR training set has no eval_transform"
    assert train.transform is not test.transform


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "imagenet"])
def test_no_folder_given_says_what_the_folder_must_hold(name):
    expected = D.DATASETS[name].expected
    with pytest.raises(DatasetError) as e:
        get_datasets(name, None)
    assert str(e.value) == f"{name} needs --data-dir ROOT containing {expected}", str(e.value)


def test_torchvisions_download_advice_is_left_out(tmp_path, monkeypatch):
    """Where dwq finds every file whole, torchvision's own message is given, less its advice to download
    (dwq never downloads)."""
    torchvision_or_skip("CIFAR is read by torchvision")
    _fake_cifar(monkeypatch, "CIFAR10", RuntimeError("Dataset not found or corrupted. You can use download=True "
                                                     "to download it"))
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(b"x")
    with pytest.raises(DatasetError) as e:
        get_datasets("cifar10", str(tmp_path))
    assert f"could not read {tmp_path} (Dataset not found or corrupted.). Expected" in str(e.value), str(e.value)
    assert "download=True" not in str(e.value)


def test_a_big_endian_16_bit_image_is_scaled_to_8_bits(tmp_path):
    """PIL's RGB conversion clips 16-bit grayscale (I;16B, a big-endian TIFF) as it does I;16."""
    torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    from PIL import Image

    from dwq.data import _read_image

    path = tmp_path / "b16.tif"
    Image.frombytes("I;16B", (5, 4), np.full((4, 5), 40000, ">u2").tobytes()).save(path)
    assert Image.open(path).mode == "I;16B"
    img = _read_image(str(path))
    assert img.mode == "RGB" and np.asarray(img).min() == np.asarray(img).max() == 40000 >> 8, np.asarray(img).max()
