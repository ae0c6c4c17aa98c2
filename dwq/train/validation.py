"""Clean and PGD accuracy of a model in training, averaged over precisions: the validation that
chooses ``best.pt`` and the reference's test-set checkpoint rule (:class:`dwq.train.Trainer`)."""
from __future__ import annotations

import torch

from dwq.attacks import pgd
from dwq.nn import kept_modes, precision
from dwq.quant import reuse_quantized_weights

from .batches import BatchLoader, epoch_batches
from .dist import unwrap

__all__ = ["evaluate_clean_pgd"]


def evaluate_clean_pgd(model, dataset, precisions, eps, alpha, steps, device, batch_size=256, seed=0,
                       early_stop=False, num_workers=0):
    """Clean and PGD accuracy averaged over ``precisions`` (attack and inference at
    the same precision, PGD-``steps``, per-sample ``early_stop`` optional), model in
    eval mode. Used for validation and the reference's test-set selection. Returns ``(clean, pgd)``
    accuracies in [0, 1]; ``pgd`` is None when ``steps`` is 0. ``num_workers``: loader workers that
    read a dataset not in memory (an image folder), as training's."""
    if len(dataset) == 0 or len(precisions) == 0:  # (a ZeroDivisionError)
        raise ValueError(f"evaluate_clean_pgd: needs images and precisions, got {len(dataset)} images and "
                         f"precisions {list(precisions)}")
    model = unwrap(model)
    with kept_modes(model), reuse_quantized_weights(model.eval()):
        return _clean_pgd(model, dataset, precisions, eps, alpha, steps, device, batch_size, seed, early_stop,
                          num_workers)


def _clean_pgd(model, dataset, precisions, eps, alpha, steps, device, batch_size, seed, early_stop, num_workers):
    g = torch.Generator().manual_seed(seed)
    clean = rob = n = 0
    # (read in this process, an ImageNet validation's 128k JPEGs were decoded on one core while the GPU waited)
    for x, y in BatchLoader(dataset, epoch_batches(len(dataset), batch_size, seed, 0), num_workers):
        x, y = x.to(device), y.to(device)
        for p in precisions:
            with precision(model, p):
                with torch.no_grad():
                    clean += (model(x).argmax(1) == y).sum().item()
                if steps > 0:
                    xa = pgd(model, x, y, eps, alpha, steps, early_stop=early_stop, generator=g)
                    with torch.no_grad():
                        rob += (model(xa).argmax(1) == y).sum().item()
        n += len(y) * len(precisions)
    return clean / n, (rob / n if steps > 0 else None)
