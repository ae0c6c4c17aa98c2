"""dwq.cli.main._eval_indices / _tensors on datasets made in the test: which test images dwq eval reads for
a test set in no class order that is not a TensorDataset (CIFAR's and SVHN's torchvision sets), and the
exact sample of a class-sorted folder (seed 0: the same images in every version and every evaluation)."""
import torch
from torch.utils.data import Dataset

from dwq.cli.main import _class_sorted, _eval_indices, _tensors


class _Set(Dataset):
    """Image i is a 1x1 image of value i; ``attrs`` are set on it (CIFAR10 has class_to_idx, no samples)."""

    def __init__(self, n, **attrs):
        self.n = n
        for k, v in attrs.items():
            setattr(self, k, v)

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return torch.full((1, 1, 1), float(i)), i % 3


def test_a_set_with_class_names_but_no_sample_list_is_read_from_its_start():
    """torchvision's CIFAR10 has class_to_idx and no samples: its first N, not a random N."""
    cifar_like = _Set(12, class_to_idx={"a": 0, "b": 1, "c": 2})
    assert not _class_sorted(cifar_like)
    assert list(_eval_indices(cifar_like, 5)) == [0, 1, 2, 3, 4]
    x, y = _tensors(cifar_like, 5)
    assert x.flatten().tolist() == [0, 1, 2, 3, 4] and y.tolist() == [0, 1, 2, 0, 1]
    assert list(_eval_indices(cifar_like)) == list(range(12))


def test_a_samples_list_alone_is_not_a_class_sorted_folder():
    assert not _class_sorted(_Set(4, samples=[("a.png", 0)] * 4))
    assert _class_sorted(_Set(4, samples=[("a.png", 0)] * 4, class_to_idx={"a": 0}))


def test_a_class_sorted_folder_reads_the_seed_0_permutation():
    folder = _Set(20, samples=[(f"{i}.png", i // 5) for i in range(20)], class_to_idx={"a": 0})
    want = torch.randperm(20, generator=torch.Generator().manual_seed(0)).tolist()
    assert _eval_indices(folder, 6) == want[:6] and _eval_indices(folder) == want
    assert _eval_indices(folder, 50) == want  # (at most the folder)
    x, _ = _tensors(folder, 6)
    assert x.flatten().long().tolist() == want[:6]
