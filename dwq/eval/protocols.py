"""Robustness evaluation of random-precision models, two protocols side by side.

* **Paper protocol** (:func:`paper_protocol`, what the reference measures): per
  batch the attack runs at one randomly drawn precision and the adversarial batch
  is classified at an independently drawn precision.
* **Adaptive protocol** (:func:`adaptive_protocol`): the attacker knows the
  precision set and attacks the expectation over it -- EOT-PGD whose loss at
  every step is the exact mean over all precisions of the set -- then the
  adversarial images are classified at every precision: the RPI figure is the
  exact expectation over a uniform draw (mean over precisions), and the worst
  case counts a sample robust only if it is right at *every* precision.
  AutoAttack ``rand`` (:func:`autoattack_rpi`) attacks the randomized model itself.
* **Transferability matrix** (:func:`transfer_matrix`): robust accuracy for every
  (attack precision, inference precision) pair; :func:`save_heatmap` draws it.

Randomized defenses are overestimated by non-adaptive attacks (Athalye et al.
2018, "Obfuscated gradients"; Tramèr et al. 2020): the paper protocol's attacker
often aims at the wrong precision, which is exactly the "transfer gap" that RPI
exploits; an attacker who knows the defense averages over it. Both are reported.

Every accuracy is returned as ``{"acc", "ci95": [lo, hi], "n"}`` with a Wilson
95% interval (1,000 images give about ±2.5 points near 50%).
"""
from __future__ import annotations

from typing import Callable

import torch

from dwq.attacks import eot_pgd
from dwq.eval.report import acc_ci, pname
from dwq.nn import RandomPrecision, precision

__all__ = ["run_at", "predict", "clean_accuracy", "robust_accuracy", "paper_protocol", "adaptive_protocol",
           "transfer_matrix", "matrix_diagonal", "rpi_best_of_attacks", "autoattack_rpi"]


def run_at(model, p) -> Callable:
    """A callable ``x -> logits`` that runs ``model`` at precision ``p`` and restores it."""
    def f(x):
        with precision(model, p):
            return model(x)
    f.precision = p
    return f


def _no_progress():
    pass


def _done(batch_result, progress):
    progress()
    return batch_result


def _batches(x, y, bs):
    for i in range(0, len(y), bs):
        yield x[i:i + bs], y[i:i + bs]


@torch.no_grad()
def predict(fn, x, batch_size=500):
    return torch.cat([fn(xb).argmax(1) for xb, _ in _batches(x, x, batch_size)])


def clean_accuracy(model, x, y, precisions, batch_size=500) -> dict:
    """Clean accuracy at each precision: ``{pname: acc_ci}``."""
    model.eval()
    return {pname(p): acc_ci(predict(run_at(model, p), x, batch_size) == y) for p in precisions}


def robust_accuracy(model, x, y, precisions, attack, batch_size=500) -> dict:
    """``attack(fn, x, y) -> x_adv`` at each precision, classified at the same precision."""
    model.eval()
    out = {}
    for p in precisions:
        f = run_at(model, p)
        xa = torch.cat([attack(f, xb, yb) for xb, yb in _batches(x, y, batch_size)])
        out[pname(p)] = acc_ci(predict(f, xa, batch_size) == y)
    return out


def paper_protocol(model, x, y, precisions, attack, batch_size=100, seed=0) -> dict:
    """The reference's RPI evaluation: for each batch, attack at a random precision and
    classify at an independently drawn one. Also returns clean RPI accuracy (one draw
    per batch). ``attack(fn, x, y) -> x_adv``."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    draw = lambda: precisions[torch.randint(len(precisions), (1,), generator=g).item()]  # noqa: E731
    clean, rob = [], []
    for xb, yb in _batches(x, y, batch_size):
        p_att, p_inf, p_clean = draw(), draw(), draw()
        xa = attack(run_at(model, p_att), xb, yb)
        with torch.no_grad():
            rob.append(run_at(model, p_inf)(xa).argmax(1) == yb)
            clean.append(run_at(model, p_clean)(xb).argmax(1) == yb)
    return {"clean": acc_ci(torch.cat(clean)), "robust": acc_ci(torch.cat(rob))}


def adaptive_protocol(model, x, y, precisions, eps, alpha, steps, restarts=1, batch_size=250, seed=0,
                      return_correct=False, progress: Callable[[], None] = _no_progress):
    """EOT-PGD over the whole set (exact mean of the per-precision losses), then
    accuracy at every inference precision, their mean (= expected accuracy of RPI with a
    uniform draw; its CI uses all n·P predictions, conservative enough for a mean of
    per-precision rates) and the worst case (right at every precision).
    ``progress()`` is called after each attacked batch."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    fns = [run_at(model, p) for p in precisions]
    xa = torch.cat([_done(eot_pgd(fns, xb, yb, eps, alpha, steps, restarts=restarts, generator=g), progress)
                    for xb, yb in _batches(x, y, batch_size)])
    per = {pname(p): predict(f, xa) == y for p, f in zip(precisions, fns)}
    allc = torch.stack(list(per.values()))
    k = int(allc.sum())
    exp = acc_ci((k, allc.numel()))
    # the CI of a mean over P correlated columns: use n (not n·P) for an honest width
    exp["ci95"] = acc_ci((round(k / len(precisions)), len(y)))["ci95"]
    exp["n"] = len(y)
    out = {"per_precision": {k_: acc_ci(v) for k_, v in per.items()}, "expected": exp,
           "worst_case": acc_ci(allc.all(0))}
    return (out, allc) if return_correct else out


def transfer_matrix(model, x, y, precisions, attack, batch_size=500, return_correct=False):
    """Robust accuracy for every (attack precision i, inference precision j):
    ``{"attack_precisions", "inference_precisions", "acc": [[...]], "ci95": [[[lo, hi]]]}``.
    ``return_correct``: also return the per-sample correctness, bool [A, P, N]."""
    model.eval()
    acc, ci, corr = [], [], []
    for pa in precisions:
        fa = run_at(model, pa)
        xa = torch.cat([attack(fa, xb, yb) for xb, yb in _batches(x, y, batch_size)])
        c = torch.stack([predict(run_at(model, pi), xa) == y for pi in precisions])
        row = [acc_ci(ci_) for ci_ in c]
        acc.append([r["acc"] for r in row])
        ci.append([r["ci95"] for r in row])
        corr.append(c)
    names = [pname(p) for p in precisions]
    out = {"attack_precisions": names, "inference_precisions": names, "acc": acc, "ci95": ci, "n": len(y)}
    return (out, torch.stack(corr)) if return_correct else out


def rpi_best_of_attacks(corrects) -> dict:
    """Expected RPI accuracy when the attacker picks, per image, the attack with the lowest
    expected accuracy over a uniform draw of the inference precision.

    ``corrects``: per-sample correctness tensors bool [P, N] (one per attack, P inference
    precisions, e.g. the adaptive protocol's and each row of a transfer matrix) or [A, P, N].
    Accuracy of image i = min over attacks of the mean over precisions; CI: Wilson with n images.
    """
    c = torch.cat([t.reshape(-1, *t.shape[-2:]).float() for t in corrects])  # [A, P, N]
    per_image = c.mean(1).min(0).values
    n = per_image.numel()
    acc = per_image.mean().item()
    out = acc_ci((round(acc * n), n))
    out["acc"] = acc
    out["attacks"] = c.shape[0]
    return out


def matrix_diagonal(tm: dict) -> dict:
    """``{pname: acc_ci}`` of a transfer matrix's diagonal (attack = inference precision)."""
    n = tm["n"]
    return {p: acc_ci((round(tm["acc"][i][i] * n), n)) for i, p in enumerate(tm["attack_precisions"])}


def autoattack_rpi(model, x, y, precisions, eps, version="rand", seed=0, n_classes=10, batch_size=250,
                   steps=100, eot_iter=20, progress: Callable[[], None] = _no_progress) -> dict:
    """AutoAttack (torchattacks) against Random Precision Inference itself
    (``dwq.RandomPrecision``: a fresh precision per forward, so APGD's EOT samples see
    the randomness); scored with a fresh independent draw per batch.
    ``progress()`` is called after each attacked batch."""
    from dwq.attacks import autoattack

    model.eval()
    rpi = RandomPrecision(model, bits=list(precisions), seed=seed)
    xa = torch.cat([_done(autoattack(rpi, xb, yb, eps, version=version, n_classes=n_classes, seed=seed,
                                     steps=steps, eot_iter=eot_iter), progress)
                    for xb, yb in _batches(x, y, batch_size)])
    with torch.no_grad():
        score = RandomPrecision(model, bits=list(precisions), seed=seed + 1)
        pred = torch.cat([score(xb).argmax(1) for xb, _ in _batches(xa, y, batch_size)])
    return acc_ci(pred == y)
