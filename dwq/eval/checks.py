"""Argument checks of :func:`dwq.eval.evaluate`, made before its first forward: an evaluation runs for
hours, and a bad setting found at its last stage (or never, giving wrong figures) costs all of them."""
from __future__ import annotations

import torch

from dwq import attacks as A
from dwq.eval.protocols import run_at
from dwq.quant import normalize_set

__all__ = ["check_evaluation"]


def check_evaluation(model, x, y, precisions, rset, *, protocols, epsilon, alpha, steps, restarts, batch_size,
                     paper_batch, autoattack_n, autoattack_steps, eot_iter, seed, attack="pgd",
                     num_classes=None, pgd_options=None) -> int:
    """ValueError naming the argument, its value and what was expected. Returns the model's number
    of outputs (classes), read from one forward of one image."""
    A.check_autograd()  # else found at the first attack, after the clean pass
    _check_gradients(model, attack, protocols)
    if num_classes is not None:
        A.check_count(num_classes, "num_classes", 1)
    A.check_count(eot_iter, "eot_iter (EOT samples per AutoAttack step)", 1)
    A.check_eps(epsilon, positive=True)
    # (-1 failed in AutoAttack's stage, 1.5 after the transfer matrix, 2^64 in EOT-PGD's generator)
    if A.check_count(seed, "seed") >= 2**63:
        raise ValueError(f"seed must be an int in 0..2^63-1 (a torch.Generator seed), got {seed!r}")
    normalize_set(precisions, "precisions")
    normalize_set(rset, "rpi_precisions")
    A.check_count(batch_size, "batch_size", 1)  # 0 was range()'s 'arg 3 must not be zero'
    if "paper-sampled" in protocols:  # 0 was a KeyError, a negative size a replica of no batch (NaN)
        A.check_count(paper_batch, "paper_batch (images per drawn batch)", 1)
    if len(set(protocols)) != len(protocols):  # (each was run, and recorded, as often as named)
        raise ValueError(f"protocols must not repeat, got {list(protocols)}")
    if autoattack_n is not None:  # 0 meant all images, -3 all but the last 3
        A.check_count(autoattack_n, "autoattack_n", 1)
        if isinstance(y, torch.Tensor) and autoattack_n > len(y):  # (was cut to len(y) without a word)
            raise ValueError(f"autoattack_n must be at most the number of images ({len(y)}), got {autoattack_n}")
    if "autoattack-rand" in protocols:
        A.check_count(autoattack_steps, "autoattack_steps", 1)
    if pgd_options is not None:  # (an unknown key was make_attack's TypeError, naming neither)
        known = ("early_stop", "restart_select")
        if not isinstance(pgd_options, dict) or set(pgd_options) - set(known) or attack != "pgd":
            raise ValueError(f"pgd_options must be a dict of {known} for attack='pgd', got {pgd_options!r} for "
                             f"attack={attack!r}")
    if attack == "pgd" or "adaptive" in protocols:  # EOT-PGD runs with these whatever the chosen attack
        # (a step of 0, or no step, attacked nothing: noise alone, reported as robust accuracy)
        A.check_eps(alpha, "step size (alpha)", positive=True)
        A.check_count(steps, "steps", 1)
        A.check_count(restarts, "restarts", 1)
    classes = _check_data(model, x, y, precisions, num_classes)
    # AutoAttack's DLR losses need 4 classes (targeted, standard) or 3 (rand): found at its stage, the last,
    # after every other attack had run
    for what, need, asked in (("attack='autoattack'", 4, attack == "autoattack"),
                              ("the autoattack-standard protocol", 4, "autoattack-standard" in protocols),
                              ("the autoattack-rand protocol", 3, "autoattack-rand" in protocols)):
        if asked and classes < need:
            raise ValueError(f"{what} needs a model with at least {need} classes (AutoAttack's DLR loss), got "
                             f"{classes} outputs")
    return classes


def _check_gradients(model, attack, protocols) -> None:
    """An integer model has no gradient at its quantized precisions: a gradient attack on it failed at the
    first one (the model refuses an input that requires grad there), after the clean pass and the fp
    stages."""
    from dwq.deploy import IntegerModel, StraightThrough

    mods = list(model.modules())
    if not any(isinstance(m, IntegerModel) for m in mods) or any(isinstance(m, StraightThrough) for m in mods):
        return
    gradient = [p for p in protocols if p in ("adaptive", "autoattack-rand", "autoattack-standard")]
    if attack != "bandits":
        gradient.insert(0, f"attack={attack!r}")
    if gradient:
        raise ValueError(f"an IntegerModel has no gradients at quantized precisions, which {', '.join(gradient)} "
                         f"need; evaluate dwq.deploy.StraightThrough(int_model, fake_quant_model) (its values, the "
                         f"fake-quant model's gradients), as dwq eval --integer does")


def _check_data(model, x, y, precisions, num_classes) -> int:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise ValueError(f"x must be a float tensor of images [N, C, H, W], got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__} "
                         f"{getattr(x, 'dtype', '')}".rstrip())
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.dim() != 1:
        raise ValueError(f"y must be int64 labels [N], got "
                         f"{(y.dtype, tuple(y.shape)) if isinstance(y, torch.Tensor) else type(y).__name__}")
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(f"x and y must hold the same number (>= 1) of images and labels, got {len(x)} and {len(y)}")
    param = next(iter(model.parameters()), None)
    devices = {str(t.device) for t in (x, y) + ((param,) if param is not None else ())}
    if len(devices) > 1:
        raise ValueError(f"x, y and the model must be on one device, got x on {x.device}, y on {y.device}"
                         + (f", the model on {param.device}" if param is not None else ""))
    lo, hi = x.min().item(), x.max().item()  # NaN propagates into both
    if not 0.0 <= lo <= hi <= 1.0:
        # the attacks clamp to [0, 1], so beyond it a perturbation left the epsilon ball unnoticed
        raise ValueError(f"x must hold images in [0, 1] (unnormalized pixel values, no NaN), got values in "
                         f"[{lo:g}, {hi:g}]")
    with torch.no_grad():
        # one image at every precision: one outside the model's set, or without an activation range, was
        # found at its attack, after the clean pass and the attacks before it
        classes = [run_at(model, p)(x[:1]).shape[-1] for p in precisions][0]
    if num_classes is not None and num_classes != classes:
        # labels of a 10-class set fit a 100-output model: its accuracy was computed, and meant nothing
        raise ValueError(f"num_classes is {num_classes} (the data's classes), but the model has {classes} outputs: "
                         f"evaluate a model built for {num_classes} classes")
    ylo, yhi = y.min().item(), y.max().item()
    if ylo < 0 or yhi >= classes:
        raise ValueError(f"y must hold class indices in [0, {classes - 1}] (the model has {classes} outputs), "
                         f"got labels in [{ylo}, {yhi}]")
    return classes
