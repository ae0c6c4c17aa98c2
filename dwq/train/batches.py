"""What a training epoch reads, and in which order: seeded batch order (also split between DDP
ranks, with each rank's share of its global batch), items whose random augmentation depends on
(seed, epoch, index) alone, and a small deterministic loader over a fixed batch list.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["epoch_batches", "rank_batches", "in_memory", "collate", "SeededItems", "BatchLoader"]


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


def in_memory(dataset):
    """``(tensors, index)`` when ``dataset`` is a TensorDataset, or Subsets of one (as
    ``dwq.data.train_val_split`` makes of mnist5k): item ``i`` is ``t[index[i]]`` of each tensor ``t``
    (``index`` None: ``t[i]``). None for any other dataset."""
    # type(...) is, not isinstance: a subclass's own __getitem__ (an augmentation) was never called
    dataset, index = _through_subsets(dataset, exact=True)
    return (dataset.tensors, index) if type(dataset) is torch.utils.data.TensorDataset else None


def _through_subsets(dataset, exact: bool):
    """``(base, index)``: the dataset under a chain of Subsets and the base's indices of the chain's items
    (None: no Subset); ``exact``: only Subset itself, not a subclass of it, is gone through."""
    index = None
    while type(dataset) is torch.utils.data.Subset if exact else isinstance(dataset, torch.utils.data.Subset):
        own = torch.as_tensor(dataset.indices, dtype=torch.long)
        index = own if index is None else own[index]
        dataset = dataset.dataset
    return dataset, index


def dataset_labels(dataset):
    """The labels of ``dataset``, int64 [N], without reading its images: a TensorDataset's (or Subsets
    of one), or those a folder or torchvision dataset lists (``targets``, SVHN's ``labels``) through
    Subsets of it; None when it lists none."""
    mem = in_memory(dataset)
    if mem is not None:
        y = mem[0][1]
        return y if mem[1] is None else y[mem[1]]
    dataset, index = _through_subsets(dataset, exact=False)
    listed = getattr(dataset, "targets", None)
    if listed is None:
        listed = getattr(dataset, "labels", None)
    try:
        y = torch.as_tensor(listed, dtype=torch.long).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        return None
    if listed is None or len(y) != len(dataset):
        return None
    return y if index is None else y[index]


def collate(dataset, idx):
    """``(x, y)``: the items ``idx`` of ``dataset`` stacked (tensors in memory are indexed directly)."""
    mem = in_memory(dataset)
    if mem is not None:  # fast path: no per-item Python, no loader workers
        tensors, index = mem
        i = torch.as_tensor(idx, dtype=torch.long)
        i = i if index is None else index[i]
        return tensors[0][i], tensors[1][i]
    # DataLoader's own collation, as the loader workers use: the same batch whatever their number
    # (numpy images failed torch.stack here, labels of shape [1] came out [B] here and [B, 1] there)
    x, y = torch.utils.data.default_collate([dataset[i] for i in idx])[:2]
    return x, y


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
            # the CPU generator alone: torch.manual_seed reseeds every GPU's too, which the fork (no
            # devices) does not give back
            torch.random.default_generator.manual_seed((self.base + int(i)) % (1 << 63))
            return self.dataset[i]


class BatchLoader:
    """Minimal deterministic loader: a DataLoader over a fixed batch list (workers optional); items
    of datasets not in memory (:func:`in_memory`) are read through :class:`SeededItems` when ``seed``
    is given. Tensors in memory are indexed in this process: workers would only add their start-up."""

    def __init__(self, dataset, batches, num_workers=0, seed=None, epoch=0):
        self.in_memory = in_memory(dataset) is not None
        if seed is not None and not self.in_memory:
            dataset = SeededItems(dataset, seed, epoch)
        self.dataset, self.batches, self.num_workers = dataset, batches, num_workers

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        if self.num_workers == 0 or self.in_memory:
            for b in self.batches:
                yield collate(self.dataset, b)
        else:
            dl = torch.utils.data.DataLoader(self.dataset, batch_sampler=self.batches,
                                             num_workers=self.num_workers,
                                             pin_memory=torch.cuda.is_available())
            it = iter(dl)
            try:
                yield from it
            finally:
                # Workers shut down here, when the loop ends or is interrupted. A scheduler's SIGTERM reaches
                # the workers too (the process group), and torch's own shutdown, in the iterator's __del__,
                # then printed an ignored "DataLoader worker ... is killed by signal: Terminated" traceback
                # after dwq's one-line message. (A worker that fails mid-epoch still raises in the loop.)
                shutdown = getattr(it, "_shutdown_workers", None)
                if shutdown is not None:
                    with contextlib.suppress(RuntimeError):
                        shutdown()
