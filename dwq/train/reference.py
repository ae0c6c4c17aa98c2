"""The reference code's CIFAR training (GATECH-EIC/Double-Win-Quant, ``CIFAR/train.py``) in dwq's
terms: its defaults, in dwq's names, for ``dwq train --reference`` to apply to every flag the user did
not give (:data:`REFERENCE_CIFAR_TRAIN`, :func:`reference_alpha`); the check that a model has its
quantizer (:func:`check_reference_quantizers`); the precision its checkpoint rule evaluates
(:func:`lowest_precision`).

Where a reference default has no dwq default of the same value (docs/workflow.md has the map):

* ``--attack_type fgsm`` (its default) starts at a random point (``--delta_init random``, also a
  default) and steps 10/255: dwq's ``fgsm-rs`` with ``alpha=10/255``, not dwq's ``fgsm``.
* ``--attack_type pgd`` forces ``--alpha 2`` whatever was given: :func:`reference_alpha`.
* 160 epochs (dwq: 10); no validation split (``val_size=0``: all 50,000 training images).
* CIFAR-100 normalized with CIFAR-10's statistics: ``dwq.data.reference_stats``, applied by
  ``dwq.models.build_model(..., reference=True)`` with the reference's quantizer.
* float32 (apex only with ``--enable_apex``, off by default): ``amp=False``.
* ``--lr_schedule cyclic`` uses ``torch.optim.lr_scheduler.CyclicLR``, which also cycles SGD's
  momentum between 0.8 and 0.9; dwq's ``cyclic`` keeps momentum fixed (multistep, the default,
  is the same in both).
"""
from __future__ import annotations

import torch.nn as nn

from dwq.quant import ActQuantizer, WeightQuantizer, normalize_precision

from .dist import unwrap

__all__ = ["REFERENCE_CIFAR_TRAIN", "reference_alpha", "check_reference_quantizers", "lowest_precision"]

# TrainConfig fields (and val_size, a CLI/data setting) at the reference's CIFAR defaults.
REFERENCE_CIFAR_TRAIN = {
    "attack": "fgsm-rs",
    "epsilon": 8 / 255,
    "alpha": 10 / 255,
    "attack_iters": 7,
    "epochs": 160,
    "batch_size": 128,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "lr_schedule": "multistep",
    "lr_milestones": (0.5, 0.75),
    "lr_gamma": 0.1,
    "seed": 0,
    "amp": False,
    "val_size": 0,
}


def reference_alpha(attack: str) -> float:
    """The training step the reference uses with ``attack`` (dwq names): 2/255 for PGD (forced by its
    train.py), 10/255 for the FGSM variants (its ``--alpha`` default)."""
    if attack == "pgd":
        return 2 / 255
    if attack in ("fgsm", "fgsm-rs"):
        return 10 / 255
    raise ValueError(f"the reference's CIFAR training has no {attack!r} attack (it has pgd and fgsm / fgsm-rs)")


def check_reference_quantizers(model: nn.Module) -> None:
    """ValueError naming the first layer whose quantizer is not the reference code's (float zero
    point; for activations one range shared by all precisions)."""
    for name, m in unwrap(model).named_modules():
        wrong = ((isinstance(m, (ActQuantizer, WeightQuantizer)) and m.zero_point != "float")
                 or (isinstance(m, ActQuantizer) and not m.shared_range))
        if wrong:
            shared = f", shared_range={m.shared_range}" if isinstance(m, ActQuantizer) else ""
            raise ValueError(f"reference=True needs the reference's quantizer (float zero point, one shared activation "
                             f"range); layer {name!r} has zero_point={m.zero_point!r}{shared}: build the model with "
                             f"dwq.models.build_model(..., reference=True)")


def lowest_precision(precisions):
    """The lowest precision of a set (by activation then weight bits; full precision is the highest):
    where the reference evaluates a random-precision model to choose its checkpoint."""
    def key(p):
        q = normalize_precision(p)
        return (float("inf"), float("inf")) if q is None else (q[1], q[0])
    return min(precisions, key=key)
