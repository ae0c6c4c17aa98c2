"""95% intervals that match how each accuracy was drawn.

* :func:`acc_ci`: a proportion of independent 0/1 outcomes (one per image): Wilson's interval.
* :func:`mean_ci`: the mean of per-image scores in [0, 1] (e.g. an image's accuracy averaged over
  the precisions of an RPI set, an exact expectation): Wilson's interval with the effective sample
  size ``n·p(1−p)/s²`` (Kish's design effect; ``s²`` the variance of the scores). It *is* the Wilson
  interval when every score is 0 or 1, and it has the CLT interval's width when n is large.
* :func:`diff_ci`: a paired difference of two per-image scores on the same images (Student t).
* :func:`cluster_ci`: a proportion whose outcomes share one random draw per cluster (the reference's
  one precision per batch): ratio estimator with a between-cluster variance and Student t with
  ``clusters − 1`` degrees of freedom, so 10 batches give a wide interval, as they should.

Every interval treats images as independent draws from the test distribution; the randomness of
the attack itself (random starts, precision draws) is part of each image's outcome.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["acc_ci", "mean_ci", "diff_ci", "cluster_ci", "t_quantile", "Z95"]

Z95 = 1.959963984540054


def _wilson(p: float, n: float) -> list:
    if n <= 0:
        return [float("nan"), float("nan")]
    z = Z95
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / d
    return [0.0 if p <= 0 else max(0.0, c - h), 1.0 if p >= 1 else min(1.0, c + h)]


def acc_ci(correct) -> dict:
    """Accuracy with its Wilson 95% interval: ``{"acc", "ci95": [lo, hi], "n"}``.

    ``correct``: bool tensor of independent per-image outcomes, or a pair ``(k, n)``.
    """
    if isinstance(correct, tuple):
        k, n = correct
    else:
        k, n = int(correct.sum().item()), correct.numel()
    if n == 0:
        return {"acc": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    return {"acc": k / n, "ci95": _wilson(k / n, n), "n": n}


def mean_ci(scores: torch.Tensor, outcomes_per_image: int = 1) -> dict:
    """Mean of per-image scores with a 95% interval over images: ``{"acc", "ci95", "n"}``.

    ``scores``: float [N] in [0, 1], one per image (e.g. the fraction of the P precisions of a set
    that classify the image correctly). The interval is Wilson's at the effective sample size
    ``n_eff = n·p(1−p)/s²`` (``s²``: variance of the scores, ``p``: their mean), capped at
    ``n·outcomes_per_image`` (no narrower than if every 0/1 outcome behind the scores were
    independent). With 0/1 scores ``n_eff = n``: the plain Wilson interval.
    """
    s = scores.detach().double().flatten()
    n = s.numel()
    if n == 0:
        return {"acc": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    if bool(((s < 0) | (s > 1)).any()):
        raise ValueError("mean_ci: scores must lie in [0, 1]")
    p = s.mean().item()
    var = s.var(unbiased=False).item()
    cap = n * max(int(outcomes_per_image), 1)
    n_eff = cap if var <= 0 else min(cap, n * p * (1 - p) / var)
    n_eff = max(n_eff, 1e-9)
    return {"acc": p, "ci95": _wilson(p, n_eff), "n": n}


def diff_ci(a: torch.Tensor, b: torch.Tensor) -> dict:
    """Mean of the paired per-image differences ``a − b`` (same images, float [N] each) with a
    Student-t 95% interval: ``{"diff", "ci95", "n"}``."""
    if a.numel() != b.numel():
        raise ValueError(f"diff_ci: {a.numel()} vs {b.numel()} scores; a paired difference needs the same images")
    d = (a.detach().double().flatten() - b.detach().double().flatten())
    n = d.numel()
    m = d.mean().item() if n else float("nan")
    if n < 2:
        return {"diff": m, "ci95": [float("nan"), float("nan")], "n": n}
    h = t_quantile(n - 1) * d.std(unbiased=True).item() / math.sqrt(n)
    return {"diff": m, "ci95": [m - h, m + h], "n": n}


def cluster_ci(correct: Sequence[int], sizes: Sequence[int]) -> dict:
    """A proportion over clusters that each share one random draw (e.g. one precision per batch).

    ``correct[b]``, ``sizes[b]``: correct predictions and images in cluster ``b``. Estimate
    ``Σk/Σn``; standard error of the ratio estimator from the between-cluster spread; Student t
    with ``B − 1`` degrees of freedom. One cluster: the interval is [0, 1] (nothing to estimate
    the spread from). Returns ``{"acc", "ci95", "n", "clusters"}``.
    """
    k = torch.tensor(list(correct), dtype=torch.float64)
    m = torch.tensor(list(sizes), dtype=torch.float64)
    B, n = k.numel(), int(m.sum().item())
    if B == 0 or n == 0:
        return {"acc": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0, "clusters": B}
    p = (k.sum() / m.sum()).item()
    if B < 2:
        return {"acc": p, "ci95": [0.0, 1.0], "n": n, "clusters": B}
    mbar = m.mean().item()
    se = math.sqrt(((k - p * m) ** 2).sum().item() / (B - 1) / B) / mbar
    h = t_quantile(B - 1) * se
    return {"acc": p, "ci95": [max(0.0, p - h), min(1.0, p + h)], "n": n, "clusters": B}


def _t_central(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3-4, exact)."""
    th = math.atan(t / math.sqrt(df))
    c2, s = math.cos(th) ** 2, math.sin(th)
    if df % 2:  # odd
        if df == 1:
            return 2 * th / math.pi
        term, acc = 1.0, 1.0
        for j in range(3, df - 1, 2):  # 1 + 2/3 c² + 2·4/(3·5) c⁴ + ...
            term *= (j - 1) / j * c2
            acc += term
        return 2 / math.pi * (th + s * math.cos(th) * acc)
    term, acc = 1.0, 1.0
    for j in range(2, df - 1, 2):  # 1 + 1/2 c² + 1·3/(2·4) c⁴ + ...
        term *= (j - 1) / j * c2
        acc += term
    return s * acc


def t_quantile(df: int, level: float = 0.95) -> float:
    """Two-sided ``level`` quantile of Student's t with integer ``df >= 1`` (2.262 for df 9)."""
    if df < 1:
        raise ValueError(f"t_quantile: df must be >= 1, got {df}")
    if df > 200:  # Cornish-Fisher expansion around the normal quantile (error < 1e-6 for df > 200)
        z = Z95 if level == 0.95 else _bisect(lambda t: math.erf(t / math.sqrt(2)), level)
        return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
    return _bisect(lambda t: _t_central(t, df), level)


def _bisect(cdf, level):
    lo, hi = 0.0, 1.0
    while cdf(hi) < level:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < level else (lo, mid)
    return (lo + hi) / 2
