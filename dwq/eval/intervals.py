"""95% intervals that match how each accuracy was drawn.

* :func:`acc_ci`: a proportion of independent 0/1 outcomes (one per image): Wilson's interval.
* :func:`mean_ci`: the mean of per-image scores in [0, 1] (e.g. an image's accuracy averaged over
  the precisions of an RPI set, an exact expectation): Wilson's interval with the effective sample
  size ``n·p(1−p)/s²`` (Kish's design effect; ``s²`` the variance of the scores, floored near 0% and
  100% where a handful of images carry it), between ``n`` and ``n·outcomes_per_image``. It *is* the
  Wilson interval when every score is 0 or 1, and it has the CLT interval's width when n is large.
* :func:`diff_ci`: a paired difference of two per-image scores on the same images (Student t, its
  variance floored as ``mean_ci``'s).
* :func:`cluster_ci`: a proportion whose outcomes share one random draw per cluster (the reference's
  one precision per batch): ratio estimator with a between-cluster variance and Student t with
  ``clusters − 1`` degrees of freedom, so 10 batches give a wide interval, as they should.

Coverage, measured by simulation under each figure's sampling model (2,000 runs a case): Wilson
93.9-96.0% at n = 500-5000 for accuracies of 5-95%, 92.9-97.7% for 0.5-99% (exact, from the
binomial on a grid of 20,000 accuracies: below 94% only in Wilson's known dips under 1%); ``mean_ci``
93.7-99.7% at n = 500-5000 for mean accuracies of 0.1-99.5% with weakly or strongly correlated
outcomes across precisions (92.0% at n = 100), 94.1-96.0% on images resampled from the demo's
per-image scores; ``diff_ci`` 94-96.5% at n = 500-5000 on the demo's pairs (92-95.5% at n = 100);
``cluster_ci`` 94-95.7% when the draws' accuracies differ by a few points. Lower where each
function says: ``diff_ci`` when few pairs differ, ``cluster_ci`` with few clusters whose draws
differ widely.

Every interval treats images as independent draws from the test distribution; the randomness of
the attack itself (random starts, precision draws) is part of each image's outcome.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from dwq._index import index_or_none

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


def _one_per_image(fn: str, t: torch.Tensor) -> None:
    # a [P, N] tensor (one row per precision) was flattened into P·N independent images: its outcomes
    # are correlated across precisions, and the interval covered 67.5% in simulation
    if t.dim() != 1:
        raise ValueError(f"{fn}: one entry per image [N] expected, got shape {tuple(t.shape)}; for outcomes "
                         f"per precision and image [P, N] pass mean_ci(c.float().mean(0), outcomes_per_image=P)")


def acc_ci(correct) -> dict:
    """Accuracy with its Wilson 95% interval: ``{"acc", "ci95": [lo, hi], "n"}``.

    ``correct``: bool tensor of independent per-image outcomes, or a pair ``(k, n)`` with
    ``0 <= k <= n``.
    """
    if isinstance(correct, tuple):
        k, n = correct
        if not (isinstance(k, int) and isinstance(n, int) and 0 <= k <= n):
            raise ValueError(f"acc_ci: {k!r} correct of {n!r}; expected integers 0 <= correct <= n")
    else:
        _one_per_image("acc_ci", correct)
        # a count or score tensor was summed as outcomes: [2, 3] gave an accuracy of 2.5
        if correct.dtype != torch.bool and not bool(((correct == 0) | (correct == 1)).all()):
            raise ValueError("acc_ci: expected per-image outcomes (bool or 0/1), got other values; for per-image "
                             "scores in [0, 1] use mean_ci")
        k, n = int(correct.sum().item()), correct.numel()
    if n == 0:
        return {"acc": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    return {"acc": k / n, "ci95": _wilson(k / n, n), "n": n}


def mean_ci(scores: torch.Tensor, outcomes_per_image: int = 1) -> dict:
    """Mean of per-image scores with a 95% interval over images: ``{"acc", "ci95", "n"}``.

    ``scores``: float [N] in [0, 1], one per image (e.g. the fraction of the P precisions of a set
    that classify the image correctly). The interval is Wilson's at the effective sample size
    ``n_eff = n·p(1−p)/s²`` (``s²``: variance of the scores, ``p``: their mean), kept between ``n``
    (the images; every outcome of an image alike) and ``n·outcomes_per_image`` (no narrower than if
    every 0/1 outcome behind the scores were independent). With 0/1 scores ``n_eff = n``: the plain
    Wilson interval.

    ``s²`` is taken no smaller than ``(p² + (1−p)²)/(n + 2)``, the spread that two more images, one
    wrong and one right at every precision, would add. Near 0% or 100% a handful of images carry the
    whole spread and ``s²`` alone can claim the independence of all ``n·P`` outcomes: every score 0
    gave an interval P times too narrow, and at 0.1-0.5% or 99.5% accuracy the interval covered the
    true mean in as few as 46% of simulated runs at n = 500-1000 (26% at n = 100). With the floor:
    94-99.7%; intervals with ``s² >= 1/n`` (every figure of the demo) are unchanged.
    """
    _one_per_image("mean_ci", scores)
    s = scores.detach().double().flatten()
    n = s.numel()
    if n == 0:
        return {"acc": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0}
    if not bool(((s >= 0) & (s <= 1)).all()):
        raise ValueError("mean_ci: scores must lie in [0, 1] (no NaN)")
    p = s.mean().item()
    var = max(s.var(unbiased=False).item(), (p * p + (1 - p) ** 2) / (n + 2))
    cap = n * max(int(outcomes_per_image), 1)
    n_eff = max(n, min(cap, n * p * (1 - p) / var))
    return {"acc": p, "ci95": _wilson(p, n_eff), "n": n}


def diff_ci(a: torch.Tensor, b: torch.Tensor) -> dict:
    """Mean of the paired per-image differences ``a − b`` (same images, scores in [0, 1], float [N]
    each) with a Student-t 95% interval, clipped to [-1, 1]: ``{"diff", "ci95", "n"}``.

    The variance of the differences is taken no smaller than ``(2 + 2·m²)/(n + 2)`` (``m`` their
    mean), the spread that two more pairs, one won by ``a`` and one by ``b``, would add, as
    :func:`mean_ci` floors its own. Without it every pair alike (clean 100% against robust 0% on a
    small test set) gave a zero-width interval claiming certainty, which covered the true difference
    in 71% of simulated runs at n = 20. The floor is far below the demo's spread (12-54% of its pairs
    differ), where the interval is the plain t one: 94-96% coverage in simulation. When only a handful
    of pairs differ it is still too narrow (covering 80% with 3 of 1,000 pairs expected to differ);
    there a paired count is the right tool (for 0/1 outcomes, McNemar's exact test on the differing
    pairs).
    """
    if a.shape != b.shape:  # same count in other shapes ([4] and [2, 2]) paired unrelated entries
        raise ValueError(f"diff_ci: scores of shapes {tuple(a.shape)} and {tuple(b.shape)}; a paired difference "
                         f"needs the same images, in the same order")
    _one_per_image("diff_ci", a)
    d = (a.detach().double().flatten() - b.detach().double().flatten())
    if bool(d.isnan().any()):
        raise ValueError("diff_ci: NaN among the scores")
    for name, t in (("a", a), ("b", b)):  # (the clip to [-1, 1] and the floor assume it)
        if t.numel() and not bool(((t >= 0) & (t <= 1)).all()):
            raise ValueError(f"diff_ci: the scores of {name} must lie in [0, 1]")
    n = d.numel()
    m = d.mean().item() if n else float("nan")
    if n < 2:
        return {"diff": m, "ci95": [float("nan"), float("nan")], "n": n}
    var = max(d.var(unbiased=True).item(), (2 + 2 * m * m) / (n + 2))
    h = t_quantile(n - 1) * math.sqrt(var / n)
    return {"diff": m, "ci95": [max(-1.0, m - h), min(1.0, m + h)], "n": n}


def cluster_ci(correct: Sequence[int], sizes: Sequence[int]) -> dict:
    """A proportion over clusters that each share one random draw (e.g. one precision per batch).

    ``correct[b]``, ``sizes[b]``: correct predictions and images in cluster ``b``
    (``0 <= correct[b] <= sizes[b]``, ``sizes[b] >= 1``; the last cluster may be smaller). Estimate
    ``Σk/Σn``; standard error of the ratio estimator from the between-cluster spread (the
    linearized variance ``Σ(k_b − p·n_b)² / (B(B − 1)·n̄²)``, no finite-population factor: the
    draws come from an unlimited supply); Student t with ``B − 1`` degrees of freedom.
    One cluster: the interval is [0, 1] (nothing to estimate the spread from). Every cluster with
    the same ratio (all right or all wrong, typically): no spread to measure, so Wilson's interval
    counting each cluster as one outcome (``B`` independent draws); the t interval would have zero
    width, and covered 32-64% of simulated runs at 0.05-0.1% accuracy with 10-20 clusters.
    Returns ``{"acc", "ci95", "n", "clusters"}``.

    Coverage is below 95% with few clusters whose draws differ widely: 88-90% with 10 clusters
    drawn from the demo's fp transfer matrix (cells 35-82%), 93-94% with 40; 94-95.7% when the
    cells differ by a few points (the demo's rpt).
    """
    k = torch.tensor(list(correct), dtype=torch.float64)
    m = torch.tensor(list(sizes), dtype=torch.float64)
    if k.numel() != m.numel():
        raise ValueError(f"cluster_ci: {k.numel()} counts for {m.numel()} cluster sizes")
    # (1.5 correct of 3 was taken as a count)
    if not bool(((m >= 1) & (k >= 0) & (k <= m) & (k == k.round()) & (m == m.round())).all()):
        raise ValueError(f"cluster_ci: expected integers 0 <= correct <= size and size >= 1 in every cluster, got correct "
                         f"{list(correct)} of sizes {list(sizes)}")
    B, n = k.numel(), int(m.sum().item())
    if B == 0:
        return {"acc": float("nan"), "ci95": [float("nan"), float("nan")], "n": 0, "clusters": B}
    p = (k.sum() / m.sum()).item()
    if B < 2:
        return {"acc": p, "ci95": [0.0, 1.0], "n": n, "clusters": B}
    if bool((k * m.sum() == k.sum() * m).all()):  # every ratio equal (exact for integer counts)
        return {"acc": p, "ci95": _wilson(p, B), "n": n, "clusters": B}
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
    """Two-sided ``level`` quantile of Student's t with integer ``df >= 1`` (2.262 for df 9),
    ``0 < level < 1``."""
    i = index_or_none(df)
    if i is None or i < 1:
        raise ValueError(f"t_quantile: df must be an integer >= 1, got {df!r}")
    df = i
    if not 0 < level < 1:
        raise ValueError(f"t_quantile: level must be in (0, 1), got {level!r}")
    if df > 200:  # Cornish-Fisher around the normal quantile: relative error < 2e-7 at 95%, < 2e-6 at 99.9%
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
