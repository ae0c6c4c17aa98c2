"""Adversarial attacks (below the models and training: they import only dwq.ops' value check and
dwq.nn's mode keeper, so that any model callable can be attacked).

Every attack takes a *model callable* ``model(x) -> logits`` on images in
``[0, 1]`` (``float [N, C, H, W]``) and integer labels ``y: int64 [N]``, and
returns adversarial images of the same shape in ``[0, 1]`` (:func:`bandits_td` with
the queries it used; :func:`apgd_eot` returns a dict of tensors, see its docstring). They never change
the model's precision themselves: to attack a quantized model at precision
``p``, pass ``dwq.eval.run_at(model, p)``; to attack the expectation over a
precision set (EOT), pass a *list* of such callables to :func:`eot_pgd`, or a
callable ``loss_fn(x_adv) -> per-sample loss``.

White-box L∞: :func:`fgsm`, :func:`fgsm_rs`, :func:`pgd` (random start,
restarts, per-sample early stop, CE or CW-margin loss), :func:`eot_pgd` (exact
average over a list of models, or a loss callable).
Others: :func:`cw_l2` (torchattacks), :func:`cw_linf` (the paper's CW-L∞ variant
with a shrinking τ penalty), :func:`bandits_td` (black-box, query-limited),
:func:`autoattack` (torchattacks ``standard`` / ``rand``), :func:`apgd_eot` (AutoAttack ``rand``'s
components with what both of its counts need).
"""
from .core import (ce_loss, cw_margin_loss, eot_loss, fgsm, fgsm_rs, pgd, eot_pgd, project_linf,
                   draw_random_start,
                   ATTACKS, RESTART_SELECT, check_autograd, check_count, check_eps, check_images, check_labels,
                   check_step)
from .extra import apgd_eot, autoattack, bandits_td, cw_l2, cw_linf

__all__ = ["ce_loss", "cw_margin_loss", "eot_loss", "fgsm", "fgsm_rs", "pgd", "eot_pgd", "project_linf",
           "draw_random_start",
           "cw_l2", "cw_linf", "bandits_td", "autoattack", "apgd_eot", "ATTACKS", "RESTART_SELECT", "check_autograd",
           "check_count", "check_eps", "check_images", "check_labels", "check_step"]
