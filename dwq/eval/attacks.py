"""Evaluation attacks chosen by name, with their settings bound: ``attack(fn, x, y) -> x_adv``."""
from __future__ import annotations

from typing import Optional

from dwq import attacks as A

__all__ = ["CW_ATTACKS", "EVAL_ATTACKS", "REFERENCE_CW_STEPS", "REFERENCE_PGD", "make_attack"]

EVAL_ATTACKS = ("pgd", "fgsm", "cw-l2", "cw-linf", "bandits", "autoattack")
CW_ATTACKS = ("cw-l2", "cw-linf")  # the two that cw_steps sets
REFERENCE_CW_STEPS = 100  # the reference's Adam steps, cw_steps' default (and all a dwq before it ran)

# The reference code's evaluation PGD (CIFAR/utils.py attack_pgd): a sample stops moving once it is
# misclassified at the attack precision, and of several restarts the larger final loss wins.
# dwq's default keeps moving every sample for all its steps (the stronger attack) and prefers a
# restart that misclassifies.
REFERENCE_PGD = {"early_stop": True, "restart_select": "loss"}


def make_attack(name: str, *, epsilon: float, alpha: float = 2 / 255, steps: int = 20, restarts: int = 1,
                cw_tau: float = 0.05, cw_steps: int = REFERENCE_CW_STEPS, bandits_queries: int = 1000,
                bandits_tile: int = 4, num_classes: Optional[int] = None, early_stop: bool = False,
                restart_select: str = "misclassified", generator=None, seed: int = 0):
    """The attack ``name`` (one of ``EVAL_ATTACKS``) as a callable ``(model_fn, x, y) -> x_adv``.

    epsilon/alpha/steps/restarts: PGD's (epsilon also bounds FGSM, CW-L∞ after projection, Bandits
    and AutoAttack); early_stop/restart_select: PGD's per-sample early stop and choice among restarts
    (``dwq.attacks.pgd``; ``**REFERENCE_PGD`` gives the reference's); cw_tau: the CW-L∞ variant's
    initial τ (run as the reference evaluated it: c = 0.1, one binary-search step, 100 Adam steps,
    but without its early abort, see docs/workflow.md); cw_steps: the Adam steps of both CW attacks
    (100, the reference's; CW-L2's pixels at 0 or 1 barely move in 100, see :func:`dwq.attacks.cw_l2`);
    bandits_queries/bandits_tile: Bandits-TD's query budget and prior tile (pixels per tile side).
    generator: the CPU ``torch.Generator`` that PGD's random starts and Bandits' exploration noise draw
    from (None: torch's global RNG); seed:
    AutoAttack's (it seeds each component itself, in a forked RNG); num_classes: AutoAttack's, the
    model's number of outputs (None: read from the model). ValueError for an unknown name,
    or early_stop/restart_select given to an attack other than PGD.
    """
    A.check_eps(epsilon)
    if name != "pgd" and (early_stop or restart_select != "misclassified"):
        raise ValueError(f"early_stop and restart_select are options of the pgd attack, not of {name!r}")
    # checked here, not at the first call: an evaluation runs the clean pass and earlier attacks first
    if name == "pgd":
        A.check_eps(alpha, "step size (alpha)")
        A.check_step(alpha, epsilon)  # (0 with ε > 0: every image stayed where it started)
        A.check_count(steps, "steps")
        A.check_count(restarts, "restarts", 1)
        if restart_select not in A.RESTART_SELECT:
            raise ValueError(f"restart_select must be one of {A.RESTART_SELECT}, got {restart_select!r}")
        return lambda f, x, y: A.pgd(f, x, y, epsilon, alpha, steps, restarts=restarts, early_stop=early_stop,
                                     restart_select=restart_select, generator=generator)
    if name == "fgsm":
        return lambda f, x, y: A.fgsm(f, x, y, epsilon)
    if name in CW_ATTACKS:
        A.check_count(cw_steps, "cw_steps", 1)
    if name == "cw-l2":
        return lambda f, x, y: A.cw_l2(f, x, y, steps=cw_steps)
    if name == "cw-linf":  # the reference's evaluation settings (test_strong.py): c = 0.1, one search step
        A.check_eps(cw_tau, "cw_tau", positive=True)
        return lambda f, x, y: A.project_linf(A.cw_linf(f, x, y, tau=cw_tau, c_init=0.1, binary_steps=1,
                                                        steps=cw_steps), x.detach(), epsilon)
    if name == "bandits":
        # (a budget under one step's 2 queries attacked nothing: clean accuracy, reported as robust accuracy)
        A.check_count(bandits_queries, "bandits_queries (2 per Bandits step)", 2)
        A.check_count(bandits_tile, "bandits_tile", 1)
        return lambda f, x, y: A.bandits_td(f, x, y, epsilon, max_queries=bandits_queries,
                                            tile_size=bandits_tile, generator=generator)[0]
    if name == "autoattack":
        A.check_count(seed, "seed")
        if num_classes is not None:
            A.check_count(num_classes, "num_classes", 1)
        return lambda f, x, y: A.autoattack(f, x, y, epsilon, "standard", n_classes=num_classes, seed=seed)
    raise ValueError(f"unknown attack {name!r}; choose one of {EVAL_ATTACKS}")
