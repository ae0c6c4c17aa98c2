"""Which test images `dwq eval --n-test N` reads."""
import numpy as np
import torch
from torch.utils.data import TensorDataset

from conftest import torchvision_or_skip
from dwq.cli.main import _tensors


def test_n_test_of_a_class_sorted_folder_is_a_fixed_random_sample(tmp_path):
    """ImageNet's val/ is an ImageFolder, every image of class 0 first: the first N of it were a few
    classes (--n-test 5000 of 50,000 scored 100 of the 1000 classes)."""
    from PIL import Image

    tv = torchvision_or_skip("ImageNet folders are read by torchvision's ImageFolder")
    for c in range(4):
        (tmp_path / f"n0{c}").mkdir()
        for i in range(5):  # the pixel says which image it is
            Image.fromarray(np.full((2, 2, 3), 10 * c + i, np.uint8)).save(tmp_path / f"n0{c}" / f"{i}.png")
    folder = tv.datasets.ImageFolder(str(tmp_path), transform=tv.transforms.PILToTensor())
    x, y = _tensors(folder, 8)
    assert sorted(set(y.tolist())) == [0, 1, 2, 3], y  # the first 8 are classes 0 and 1 alone
    x2, y2 = _tensors(folder, 8)
    assert torch.equal(x, x2) and torch.equal(y, y2)  # the same images in every evaluation
    ids = x[:, 0, 0, 0].tolist()
    assert len(set(ids)) == 8 and all(int(v) // 10 == c for v, c in zip(ids, y.tolist()))
    # all of it in that order too: in its own, the first --autoattack-n were the first classes alone
    xa, ya = _tensors(folder)
    assert sorted(xa[:, 0, 0, 0].tolist()) == [10 * c + i for c in range(4) for i in range(5)]
    assert torch.equal(xa[:8], x) and sorted(set(ya[:5].tolist())) != [ya[0].item()]


def test_n_test_of_an_unsorted_test_set_is_its_first_images():
    x = torch.arange(10.0).view(10, 1)
    y = torch.arange(10) % 3
    got = _tensors(TensorDataset(x, y), 4)
    assert got[0].flatten().tolist() == [0.0, 1.0, 2.0, 3.0] and got[1].tolist() == [0, 1, 2, 0]
