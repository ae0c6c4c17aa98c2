"""What an epoch reads: a new order every epoch, a new augmentation draw every epoch, items of nested
Subsets in memory, and drop_last leaving out only a short last batch."""
import torch
from torch.utils.data import Subset, TensorDataset

from dwq.train.batches import BatchLoader, SeededItems, collate, epoch_batches


def test_each_epoch_reads_the_images_in_another_order_and_each_once():
    orders = [sum(epoch_batches(64, 16, seed=5, epoch=e), []) for e in range(3)]
    assert all(sorted(o) == list(range(64)) for o in orders)
    assert orders[0] != orders[1] and orders[1] != orders[2] and orders[0] != orders[2]
    assert orders[1] == sum(epoch_batches(64, 16, seed=5, epoch=1), [])  # seeded: the same again


def test_drop_last_leaves_out_only_a_short_last_batch():
    assert [len(b) for b in epoch_batches(8, 4, seed=0, epoch=0, drop_last=True)] == [4, 4]
    assert [len(b) for b in epoch_batches(9, 4, seed=0, epoch=0, drop_last=True)] == [4, 4]
    assert [len(b) for b in epoch_batches(9, 4, seed=0, epoch=0)] == [4, 4, 1]


class _Noise(torch.utils.data.Dataset):
    """An item drawn from torch's RNG, as a random augmentation."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.rand(3), i


def test_augmentation_draws_anew_each_epoch_and_the_same_for_one_epoch():
    def items(epoch):
        ds = SeededItems(_Noise(), seed=1, epoch=epoch)
        return torch.stack([ds[i][0] for i in range(4)])
    assert torch.equal(items(0), items(0))
    assert not torch.equal(items(0), items(1))
    x0, _ = next(iter(BatchLoader(_Noise(), [[0, 1, 2, 3]], seed=1, epoch=0)))
    x1, _ = next(iter(BatchLoader(_Noise(), [[0, 1, 2, 3]], seed=1, epoch=1)))
    assert torch.equal(x0, items(0)) and not torch.equal(x0, x1)


def test_nested_subsets_in_memory_read_the_items_a_subset_names():
    x = torch.arange(20, dtype=torch.float32).view(20, 1)
    base = TensorDataset(x, torch.arange(20))
    outer = Subset(Subset(base, [19, 3, 7, 11, 5, 2]), [4, 0, 2])  # -> base items 5, 19, 7
    xs, ys = collate(outer, [0, 1, 2])
    assert ys.tolist() == [5, 19, 7] and xs.view(-1).tolist() == [5.0, 19.0, 7.0]
    assert [outer[i][1].item() for i in range(3)] == [5, 19, 7]
