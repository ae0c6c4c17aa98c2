"""dwq.data.load_mnist5k: the seed draws which images of each class go to the test split, not only the order
in which a fixed set of them is returned (the first images of each class in the file, whatever the seed,
would make every "another seed" run score the same 1,000 images)."""
import torch

from dwq.data import _read_mnist5k, load_mnist5k


def _images(ds):
    return {bytes(row.numpy()) for row in ds.tensors[0].flatten(1)}


def test_another_seed_puts_other_images_in_the_test_split():
    a, b = _images(load_mnist5k("test", seed=0)), _images(load_mnist5k("test", seed=1))
    assert len(a) > 900 and len(a & b) < 300, f"seeds 0 and 1 share {len(a & b)} of {len(a)} test images"


def test_the_test_split_is_not_the_first_images_of_each_class():
    x, y = _read_mnist5k()
    first = set()
    for c in range(10):
        first |= {bytes(row.numpy()) for row in x[(y == c).nonzero().flatten()[:100]].flatten(1)}
    got = _images(load_mnist5k("test"))
    assert len(got & first) < 300, f"{len(got & first)} of the test images are their class's first 100 in the file"
    assert torch.bincount(load_mnist5k("test").tensors[1], minlength=10).tolist() == [100] * 10
