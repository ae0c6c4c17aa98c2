"""The reference code's CIFAR training defaults (GATECH-EIC/Double-Win-Quant, ``CIFAR/train.py``),
in dwq's names, for ``dwq train --reference`` to apply to every flag the user did not give.

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

__all__ = ["REFERENCE_CIFAR_TRAIN", "reference_alpha"]

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
