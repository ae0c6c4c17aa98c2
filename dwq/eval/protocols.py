"""Robustness evaluation of random-precision models, two protocols side by side.

* **Paper protocol** (:func:`paper_protocol`, what the reference measures): the attack runs at one
  precision drawn from the set and the adversarial image is classified at an independently drawn
  one. Because both draws are independent and uniform, its expectation is *exactly* the mean of the
  transferability matrix over all (attack, inference) pairs; that is the figure reported, from the
  matrix's own attack runs. The reference's one-draw-per-batch replica is an option, with an
  interval over batches (only as many independent draws as batches).
* **Adaptive protocol** (:func:`adaptive_protocol`): the attacker knows the precision set and
  attacks the expectation over it -- EOT-PGD whose loss at every step is the exact mean over all
  precisions of the set -- then the adversarial images are classified at every precision: the RPI
  figure is the exact expectation over a uniform draw (mean over precisions), and the worst case
  counts an image robust only if it is right at *every* precision.
* **AutoAttack rand** (:func:`autoattack_rpi`) attacks the randomized model itself, counted both as
  the original implementation counts and as an expected accuracy.
* **Transferability matrix** (:func:`transfer_matrix`): robust accuracy for every (attack precision,
  inference precision) pair; :func:`dwq.eval.save_heatmap` draws it. Its diagonal is the attack at
  the classifying precision; every figure that depends on those attacks is derived from that one run.

Randomized defenses are overestimated by non-adaptive attacks (Athalye et al. 2018, "Obfuscated
gradients"; Tramèr et al. 2020): the paper protocol's attacker often aims at the wrong precision,
which is exactly the "transfer gap" that RPI exploits; an attacker who knows the defense averages
over it. Both are reported.

Every accuracy is ``{"acc", "ci95": [lo, hi], "n"}`` with a 95% interval matched to how it was
drawn (:mod:`dwq.eval.intervals`): Wilson for one 0/1 outcome per image, Wilson at the effective
sample size for means of per-image scores, Student t over batches for per-batch draws. Functions
called with ``return_correct=True`` also return the per-image outcomes, so that figures derived
from the same attack run (the matrix's diagonal and mean, best of attacks, paired differences)
need no second run.
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import torch
import torch.nn as nn

from dwq.attacks import apgd_eot, eot_pgd
from dwq.attacks.core import check_label_range, check_labels
from dwq.eval.intervals import acc_ci, cluster_ci, mean_ci
from dwq.eval.report import pname
from dwq.eval.stages import resumable_map
from dwq.nn import kept_modes, precision

__all__ = ["run_at", "predict", "clean_accuracy", "robust_accuracy", "rpi_clean", "paper_protocol",
           "adaptive_protocol", "transfer_matrix", "matrix_diagonal", "rpi_best_of_attacks",
           "rpi_worst_case_of_attacks", "autoattack_rpi",
           "PerImageRPI", "DEFINITIONS"]

# One line per reported RPI figure (copied into report.json next to the numbers).
DEFINITIONS = {
    "clean": "clean accuracy of RPI: mean over the set's precisions of the clean accuracy at each (exact "
             "expectation of a uniform draw); interval over images",
    "paper": "paper protocol: attack at one precision of the set, classify at an independently drawn one; exact "
             "expectation = mean of the transfer matrix over all attack x inference pairs; interval over images",
    "paper_sampled": "the reference's replica: one (attack, inference) precision pair drawn per batch, read from "
                     "the transfer matrix's own attack runs; interval over batches (Student t, batches - 1 df), which "
                     "covers less than 95% when the batches are few and the matrix's cells far apart (88-90% in "
                     "simulations with 10 batches and cells of 35-82%)",
    "adaptive": "EOT-PGD on the exact mean loss over the set, then the expected accuracy over a uniform draw "
                "of the inference precision; interval over images",
    "adaptive_worst_case": "EOT-PGD's images counted robust only if every precision of the set classifies them "
                           "correctly",
    "worst_case_of_attacks": "an image counted robust only if every attack run on it (EOT-PGD and the "
                             "single-precision attacks at the set's precisions, the transfer matrix's RPI block) "
                             "leaves it classified correctly at every precision of the set",
    "best_of_attacks": "per image, the strongest of EOT-PGD and the single-precision attacks at the set's "
                       "precisions (the transfer matrix's RPI rows; lowest expected accuracy over the set); "
                       "interval over images",
    "autoattack_rand_original": "AutoAttack rand as fra31/auto-attack counts it: an image is lost if one "
                                "random-precision forward misclassifies the clean image or what APGD-CE or "
                                "APGD-DLR returns (the last iterate any forward misclassified)",
    "autoattack_rand_expected": "expected accuracy over a uniform draw of the final AutoAttack rand images (per "
                                "image, of the APGD runs' last misclassified and highest-loss iterates, the one "
                                "with the lowest expected accuracy); interval over images",
}


def run_at(model, p) -> Callable:
    """A callable ``x -> logits`` that runs ``model`` at precision ``p`` and restores it."""
    def f(x):
        with precision(model, p):
            return model(x)
    f.precision = p
    return f


def _in_eval_mode(protocol):
    """Runs ``protocol(model, ...)`` with ``model`` in eval mode and gives each module its mode back:
    a training model was left in eval mode (frozen BN statistics and quantizer ranges for the rest of
    training), as :func:`dwq.eval.evaluate` already avoids."""
    @functools.wraps(protocol)
    def run(model, *args, **kwargs):
        with kept_modes(model):
            model.eval()
            return protocol(model, *args, **kwargs)
    return run


def _batches(x, y, bs):
    for i in range(0, len(y), bs):
        yield x[i:i + bs], y[i:i + bs]


@torch.no_grad()
def predict(fn, x, batch_size=500):
    """Predicted classes, int64 [N], of ``fn(x)`` in batches."""
    return torch.cat([fn(xb).argmax(1) for xb, _ in _batches(x, x, batch_size)])


@_in_eval_mode
def clean_accuracy(model, x, y, precisions, batch_size=500, return_correct=False):
    """Clean accuracy at each precision: ``{pname: acc_ci}``; ``return_correct``: also the
    per-image correctness, bool [P, N]. ValueError for labels that are no classes of the model (a
    label of 10 on a 10-output model scored 0% without a word)."""
    check_labels(x, y)
    if len(y) and len(precisions):
        with torch.no_grad():
            check_label_range(y, run_at(model, precisions[0])(x[:1]).shape[-1])
    corr = torch.stack([predict(run_at(model, p), x, batch_size) == y for p in precisions])
    out = {pname(p): acc_ci(c) for p, c in zip(precisions, corr)}
    return (out, corr) if return_correct else out


@_in_eval_mode
def robust_accuracy(model, x, y, precisions, attack, batch_size=500) -> dict:
    """``attack(fn, x, y) -> x_adv`` at each precision, classified at the same precision. When the
    transfer matrix is run too, use its diagonal (:func:`matrix_diagonal`) instead: same attack."""
    out = {}
    for p in precisions:
        f = run_at(model, p)
        xa = torch.cat(resumable_map(lambda xb, yb: attack(f, xb, yb), _batches(x, y, batch_size)))
        out[pname(p)] = acc_ci(predict(f, xa, batch_size) == y)
    return out


def rpi_clean(clean_correct: torch.Tensor) -> dict:
    """Exact clean accuracy of RPI with a uniform draw from the set: the mean over precisions of
    the per-precision correctness ``clean_correct`` (bool [P, N]), with its interval over images."""
    return mean_ci(clean_correct.float().mean(0), clean_correct.shape[0])


@_in_eval_mode
def transfer_matrix(model, x, y, precisions, attack, batch_size=500, return_correct=False, on_row=None, row=None):
    """Robust accuracy for every (attack precision i, inference precision j):
    ``{"attack_precisions", "inference_precisions", "acc": [[...]], "ci95": [[[lo, hi]]], "n"}``.
    One attack run per attack precision, classified at every precision.
    ``return_correct``: also return the per-image correctness, bool [A, P, N].
    ``on_row(p)``: called before the attack at precision ``p`` (progress).
    ``row(p, compute)``: returns the row's correctness at precision ``p``, calling ``compute()`` for it
    (or reading it back: an evaluation's saved stages)."""
    acc, ci, corr = [], [], []
    for pa in precisions:
        if on_row is not None:
            on_row(pa)
        def compute(pa=pa):
            fa = run_at(model, pa)
            xa = torch.cat(resumable_map(lambda xb, yb: attack(fa, xb, yb), _batches(x, y, batch_size)))
            return torch.stack([predict(run_at(model, pi), xa, batch_size) == y for pi in precisions])

        c = compute() if row is None else row(pa, compute)
        cells = [acc_ci(ci_) for ci_ in c]
        acc.append([r["acc"] for r in cells])
        ci.append([r["ci95"] for r in cells])
        corr.append(c)
    names = [pname(p) for p in precisions]
    out = {"attack_precisions": names, "inference_precisions": names, "acc": acc, "ci95": ci, "n": len(y)}
    return (out, torch.stack(corr)) if return_correct else out


def paper_protocol(tm_correct: torch.Tensor, clean_correct: torch.Tensor = None, *, sampled_batch: int = None,
                   seed: int = 0) -> dict:
    """The reference's RPI evaluation from the transfer matrix's own attack runs.

    ``tm_correct``: bool [A, P, N], image n attacked at attack precision a and classified at
    inference precision p (:func:`transfer_matrix` over the RPI set); ``clean_correct``: bool [P, N].
    Returns ``{"robust": ...}`` (and ``"clean"``), the exact expectations over independent uniform
    draws of the attack and inference precisions with intervals over images. ``sampled_batch``:
    also the reference's sampled replica (``"robust_sampled"``, ``"clean_sampled"``): per batch of
    that many images one attack and one inference precision (one clean precision) are drawn, as the
    reference does; their intervals count batches, not images (:func:`dwq.eval.intervals.cluster_ci`).
    Each also keeps what its interval is computed from, ``"batches"``: per batch the drawn indices
    into the set (``"attack"`` and ``"inference"``; ``"precision"`` for clean), its correct count
    (``"correct"``) and its images (``"sizes"``), so that a saved report re-derives it.
    """
    for t, what, dims in ((tm_correct, "tm_correct", "[A, P, N]"), (clean_correct, "clean_correct", "[P, N]")):
        if t is not None and (not isinstance(t, torch.Tensor) or t.dim() != dims.count(",") + 1
                              or (t.dtype != torch.bool and not bool(((t == 0) | (t == 1)).all()))):
            # (probabilities or counts were averaged as if they were outcomes, and a figure came back)
            raise ValueError(f"paper_protocol: {what} must be per-image outcomes, bool (or 0/1) {dims}, got "
                             f"{(t.dtype, tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__}")
    A, P, N = tm_correct.shape
    out = {"robust": mean_ci(tm_correct.float().mean((0, 1)), A * P)}
    if clean_correct is not None:
        out["clean"] = rpi_clean(clean_correct)
    if sampled_batch:
        g = torch.Generator().manual_seed(seed)
        attack, inference, clean, rk, ck, sizes = [], [], [], [], [], []
        for i in range(0, N, sampled_batch):
            j = min(i + sampled_batch, N)
            a, p, pc = (int(torch.randint(k, (1,), generator=g)) for k in (A, P, P))
            attack.append(a)
            inference.append(p)
            clean.append(pc)
            rk.append(int(tm_correct[a, p, i:j].sum()))
            if clean_correct is not None:
                ck.append(int(clean_correct[pc, i:j].sum()))
            sizes.append(j - i)
        out["robust_sampled"] = dict(cluster_ci(rk, sizes), batches={
            "attack": attack, "inference": inference, "correct": rk, "sizes": sizes})
        if clean_correct is not None:
            out["clean_sampled"] = dict(cluster_ci(ck, sizes), batches={
                "precision": clean, "correct": ck, "sizes": list(sizes)})
    return out


@_in_eval_mode
def adaptive_protocol(model, x, y, precisions, eps, alpha, steps, restarts=1, batch_size=250, seed=0,
                      return_correct=False):
    """EOT-PGD over the whole set (exact mean of the per-precision losses), then accuracy at every
    inference precision (``per_precision``), their mean (``expected``: the expected accuracy of RPI
    with a uniform draw, interval over images) and the worst case (right at every precision).
    ``return_correct``: also the per-image correctness, bool [P, N]."""
    g = torch.Generator().manual_seed(seed)
    fns = [run_at(model, p) for p in precisions]

    def attack(xb, yb):
        return eot_pgd(fns, xb, yb, eps, alpha, steps, restarts=restarts, generator=g)

    xa = torch.cat(resumable_map(attack, _batches(x, y, batch_size), generators=[g]))
    allc = torch.stack([predict(f, xa, batch_size) == y for f in fns])
    out = {"per_precision": {pname(p): acc_ci(c) for p, c in zip(precisions, allc)},
           "expected": mean_ci(allc.float().mean(0), len(precisions)), "worst_case": acc_ci(allc.all(0))}
    return (out, allc) if return_correct else out


def rpi_best_of_attacks(corrects, return_scores=False):
    """Expected RPI accuracy when the attacker picks, per image, the attack with the lowest
    expected accuracy over a uniform draw of the inference precision.

    ``corrects``: per-image correctness tensors bool [P, N] (one per attack, P inference
    precisions, e.g. the adaptive protocol's and each row of a transfer matrix) or [A, P, N].
    Score of image i = min over attacks of the mean over precisions; interval over images.
    ``return_scores``: also the per-image scores, float [N].
    """
    c = _attack_stack(corrects).float()
    per_image = c.mean(1).min(0).values
    out = mean_ci(per_image, c.shape[1])
    out["attacks"] = c.shape[0]
    return (out, per_image) if return_scores else out


def rpi_worst_case_of_attacks(corrects, return_scores=False):
    """Accuracy when an image counts only if no attack fools any precision of the set: the worst
    case over both attacks and inference precisions (``adaptive_worst_case`` is EOT-PGD's alone, so an
    image fooled at p by the single-precision attack at p still counted there).

    ``corrects``: as for ``rpi_best_of_attacks``. ``return_scores``: also the per-image 0/1 scores, float [N].
    """
    robust = _attack_stack(corrects).bool().all(0).all(0)
    out = acc_ci(robust)
    return (out, robust.float()) if return_scores else out


def _attack_stack(corrects) -> torch.Tensor:
    """The per-image correctness tensors [P, N] or [A, P, N] of several attacks as one [A, P, N]."""
    return torch.cat([t.reshape(-1, *t.shape[-2:]) for t in corrects])


def matrix_diagonal(tm: dict) -> dict:
    """``{pname: acc_ci}`` of a transfer matrix's diagonal (attack = inference precision)."""
    n = tm["n"]
    return {p: acc_ci((round(tm["acc"][i][i] * n), n)) for i, p in enumerate(tm["attack_precisions"])}


class PerImageRPI(nn.Module):
    """Random Precision Inference with an independent uniform draw *per image*: each forward
    splits the batch by drawn precision, runs every part at its precision and reassembles the
    logits (differentiable). In eval mode an image's output does not depend on the rest of its
    batch, so per-image outcomes are independent and a Wilson interval over images is honest;
    ``dwq.RandomPrecision`` (one draw per forward, as the reference) makes a batch share its draws.
    ``seed`` seeds a private generator; ``draws`` counts the per-image draws made."""

    def __init__(self, model: nn.Module, precisions: Sequence, seed: int = 0):
        super().__init__()
        self.model = model
        self.precisions = list(precisions)
        self._fns = [run_at(model, p) for p in self.precisions]
        self._g = torch.Generator().manual_seed(seed)
        self.draws = 0

    def forward(self, x):
        idx = torch.randint(len(self._fns), (x.shape[0],), generator=self._g).to(x.device)
        self.draws += x.shape[0]
        parts, order = [], []
        for k, f in enumerate(self._fns):
            sel = (idx == k).nonzero().flatten()
            if sel.numel():
                parts.append(f(x[sel]))
                order.append(sel)
        order = torch.cat(order)
        return torch.cat(parts)[torch.argsort(order)]


@_in_eval_mode
def autoattack_rpi(model, x, y, precisions, eps, *, seed=0, batch_size=250, steps=100, eot_iter=20,
                   return_correct=False):
    """AutoAttack ``rand`` (APGD-CE then APGD-DLR, ``eot_iter`` EOT samples per step, ``steps``
    iterations: the original's settings) against Random Precision Inference, with an independent
    precision draw per image and per forward (:class:`PerImageRPI`). Two counts:

    * ``original``: as fra31/auto-attack counts ``version='rand'``: an image is robust only if a
      forward classifies the clean image correctly and, after each component, a fresh forward
      classifies the image it returns (the last iterate that a forward misclassified, else the clean
      image) correctly. Wilson interval (independent per-image outcomes).
    * ``expected``: the expected accuracy over a uniform draw of the final image (per image, of
      the components' last misclassified and highest-loss iterates, the one with the lowest
      expected accuracy over the set); interval over images.

    Both components attack every image. AutoAttack skips the images its count has already lost;
    attacking them too changes the original count only in distribution (each image's attack is its own,
    but its random start is drawn from a batch of another size than AutoAttack's, so its iterates are
    not AutoAttack's image for image), and the expected count needs them: with APGD-DLR run only on the images the original count
    still held, an image a lucky draw lost after APGD-CE kept its APGD-CE score, which biased the
    expected accuracy upward. One run serves both counts.
    ``return_correct``: also ``{"original": bool [N], "expected": float [N] per-image scores}``.
    """
    precisions = list(precisions)
    fns = [run_at(model, p) for p in precisions]
    rpi = PerImageRPI(model, precisions, seed=seed)

    def expected(points, yb):  # per image: the mean over precisions of correct classification
        return torch.stack([predict(f, points) == yb for f in fns]).float().mean(0)

    def lowest(run, yb):  # of a component's last misclassified and highest-loss iterates
        return torch.minimum(expected(run["x_fooled"], yb), expected(run["x_best"], yb))

    def component(xb, yb, loss):  # -> (the original count holds the image after it, its lowest score)
        ok = predict(rpi, xb) == yb if loss == "ce" else True  # AutoAttack's clean check, before APGD-CE
        run = apgd_eot(rpi, xb, yb, eps, loss=loss, steps=steps, eot_iter=eot_iter, seed=seed)
        return ok & (predict(rpi, run["returned"]) == yb), lowest(run, yb)

    # each component of each batch saved as it finishes (a kill in APGD-DLR kept the batch's APGD-CE
    # only with the DLR run: the demo's 100 images are one batch), drawing in the order a batch did
    items = [(xb, yb, loss) for xb, yb in _batches(x, y, batch_size) for loss in ("ce", "dlr")]
    runs = resumable_map(component, items, generators=[rpi._g])
    orig = torch.cat([ce[0] & dlr[0] for ce, dlr in zip(runs[0::2], runs[1::2])])
    exp = torch.cat([torch.minimum(ce[1], dlr[1]) for ce, dlr in zip(runs[0::2], runs[1::2])])
    out = {"original": acc_ci(orig), "expected": mean_ci(exp, len(precisions)), "steps": steps,
           "eot_iter": eot_iter, "n": len(y)}
    return (out, {"original": orig, "expected": exp}) if return_correct else out
