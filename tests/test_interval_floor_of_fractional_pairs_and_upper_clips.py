"""dwq.eval.intervals where the interval tests leave the formulas open: diff_ci's variance floor
(2 + 2·m²)/(n + 2) with a mean difference strictly between -1 and 1 (fractional RPI scores alike on every
image; at m = 0 or ±1, m² and |m| agree), and cluster_ci's upper bound clipped at 1 (the lower clip at 0
is pinned in test_interval_edges.py)."""
import math

import pytest
import torch

from dwq import eval as E


@pytest.mark.parametrize("a,b", [(0.75, 0.25), (0.25, 0.75), (0.6, 0.5)])
def test_diff_ci_floor_uses_the_square_of_the_mean_difference(a, b):
    """Every pair alike at a fractional difference m (e.g. two models' RPI expectations): no spread, so the
    variance is the floor (2 + 2 m^2)/(n + 2) and the interval m ± t(n - 1) sqrt(floor / n)."""
    n = 20
    r = E.diff_ci(torch.full((n,), a, dtype=torch.float64), torch.full((n,), b, dtype=torch.float64))
    m = a - b
    h = E.t_quantile(n - 1) * math.sqrt((2 + 2 * m * m) / (n + 2) / n)
    assert r["diff"] == pytest.approx(m, abs=1e-15) and r["n"] == n
    assert r["ci95"] == pytest.approx([m - h, m + h], abs=1e-12), (
        f"diff_ci of {n} pairs all {m:+} apart: {r['ci95']}, expected the floor's interval {[m - h, m + h]}")


def test_cluster_ci_upper_bound_is_clipped_at_one():
    """29 right of 30 in three batches of 10: p + h = 29/30 + t(2)/30 > 1, reported as 1; the lower bound
    is the t interval's p - h (se = sqrt((1/9 + 1/9 + 4/9) / (3 * 2)) / 10 = 1/30)."""
    r = E.cluster_ci([10, 10, 9], [10, 10, 10])
    p, h = 29 / 30, E.t_quantile(2) / 30
    assert p + h > 1.0
    assert r["acc"] == pytest.approx(p) and r["n"] == 30 and r["clusters"] == 3
    lo, hi = r["ci95"]
    assert hi == 1.0, f"upper bound {hi!r}: an accuracy interval ends at 1"
    assert lo == pytest.approx(p - h, abs=1e-12)
