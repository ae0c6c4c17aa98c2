"""dwq.train.batches.SeededItems: each item's random augmentation is drawn from (seed, epoch, index), so the
items of one epoch draw differently from each other (not one augmentation repeated over the dataset), and
each item draws the same again wherever it is read (a batch, a loader, another order)."""
import torch

from dwq.train.batches import BatchLoader, SeededItems
from test_train_batch_order import _Noise


def test_the_items_of_one_epoch_draw_differently_from_each_other():
    """Four items of a dataset whose item is torch.rand(3): four different draws, not one draw four times."""
    ds = SeededItems(_Noise(), seed=1, epoch=0)
    draws = [ds[i][0] for i in range(len(ds))]
    same = [(i, j) for i in range(4) for j in range(i + 1, 4) if torch.equal(draws[i], draws[j])]
    assert not same, f"items {same} drew the same augmentation: the index does not seed the draw"


def test_an_item_draws_the_same_in_any_batch_order():
    """Item i's draw depends on i, not on its place in the batch: a reversed batch gives the rows reversed."""
    x, y = next(iter(BatchLoader(_Noise(), [[0, 1, 2, 3]], seed=1, epoch=2)))
    xr, yr = next(iter(BatchLoader(_Noise(), [[3, 2, 1, 0]], seed=1, epoch=2)))
    assert yr.tolist() == [3, 2, 1, 0]
    assert torch.equal(xr, x.flip(0)), "an item's augmentation changed with its place in the batch"
