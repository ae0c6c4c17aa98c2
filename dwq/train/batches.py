"""What a training epoch reads, and in which order: seeded batch order (also split between DDP
ranks, with each rank's share of its global batch), items whose random augmentation depends on
(seed, epoch, index) alone, and a small deterministic loader over a fixed batch list.
"""
from __future__ import annotations

import torch

__all__ = ["epoch_batches", "rank_batches", "collate", "SeededItems", "BatchLoader"]


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                  drop_last: bool = False):
    """Index lists of this rank for each global batch of ``epoch`` (seeded permutation). A last
    batch smaller than ``world`` is left out on every rank: some rank's share would be empty, and
    the ranks of a DDP step must all step together."""
    return [b for b, _ in rank_batches(n, batch_size, seed, epoch, rank, world, drop_last)]


def rank_batches(n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                 drop_last: bool = False):
    """:func:`epoch_batches` as ``(indices, share)`` pairs: ``share`` is this rank's part of its global
    batch times ``world`` (1.0 when the batch splits evenly), the weight of the rank's mean loss that
    makes DDP's average of the ranks' gradients the global batch's (``Trainer.train_batch``)."""
    # modulo 2^64 (what manual_seed takes): a seed up to 2^63 - 1 works, smaller ones keep their order
    perm = torch.randperm(n, generator=torch.Generator().manual_seed((seed * 100003 + epoch) % (1 << 64))).tolist()
    out = []
    for i in range(0, n, batch_size):
        b = perm[i:i + batch_size]
        if (drop_last and len(b) < batch_size) or len(b) < world:
            break
        mine = b[rank::world]
        out.append((mine, len(mine) * world / len(b)))
    return out


def collate(dataset, idx):
    """``(x, y)``: the items ``idx`` of ``dataset`` stacked (a TensorDataset is indexed directly)."""
    if hasattr(dataset, "tensors"):  # TensorDataset fast path
        return dataset.tensors[0][idx], dataset.tensors[1][idx]
    xs, ys = zip(*(dataset[i] for i in idx))
    return torch.stack(xs), torch.as_tensor(ys)


class SeededItems(torch.utils.data.Dataset):
    """``dataset[i]`` drawn with torch's CPU RNG seeded from (seed, epoch, i), the caller's RNG state
    untouched: a random augmentation (torchvision's transforms draw from torch's RNG) then depends on
    the image and the epoch alone, not on the number of loader workers, so a run resumed with another
    ``num_workers`` continues exactly."""

    def __init__(self, dataset, seed: int, epoch: int):
        self.dataset, self.base = dataset, (seed * 1_000_003 + epoch) * 1_000_000_007

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.base + int(i)) % (1 << 63))
            return self.dataset[i]


class BatchLoader:
    """Minimal deterministic loader: a DataLoader over a fixed batch list (workers optional); items
    other than a TensorDataset's are read through :class:`SeededItems` when ``seed`` is given."""

    def __init__(self, dataset, batches, num_workers=0, seed=None, epoch=0):
        if seed is not None and not hasattr(dataset, "tensors"):
            dataset = SeededItems(dataset, seed, epoch)
        self.dataset, self.batches, self.num_workers = dataset, batches, num_workers

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        if self.num_workers == 0 or hasattr(self.dataset, "tensors"):
            for b in self.batches:
                yield collate(self.dataset, b)
        else:
            dl = torch.utils.data.DataLoader(self.dataset, batch_sampler=self.batches,
                                             num_workers=self.num_workers,
                                             pin_memory=torch.cuda.is_available())
            yield from dl
