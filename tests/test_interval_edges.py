"""dwq.eval.intervals at the edges the interval tests of test_eval.py leave out: mean_ci's variance floor
where it sets the effective size, one pair for diff_ci, the scores of b, non-integer cluster sizes,
cluster_ci's clip at 0, and t quantiles off the 95% level beyond df 200."""
import pytest
import torch

from dwq import eval as E


def _wilson_by_hand(p, n, z=1.959963984540054):
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return [max(0.0, c - h), min(1.0, c + h)]


def test_mean_ci_floor_sets_the_effective_size_between_n_and_the_cap():
    # every score 0.5 (no spread): the floor (p^2 + (1-p)^2)/(n + 2) = 0.5/12 is the variance, so
    # n_eff = n p(1-p) / floor = 10 * 0.25 * 12 / 0.5 = 60, inside [n, n*P] = [10, 1000]
    r = E.mean_ci(torch.full((10,), 0.5), 100)
    assert r["acc"] == 0.5 and r["n"] == 10
    assert r["ci95"] == pytest.approx(_wilson_by_hand(0.5, 60), abs=1e-12)


def test_diff_ci_of_one_pair_has_no_interval():
    # one pair: no spread to estimate (the t interval needs n - 1 >= 1 degrees of freedom)
    r = E.diff_ci(torch.tensor([1.0]), torch.tensor([0.0]))
    assert r["diff"] == 1.0 and r["n"] == 1
    assert all(v != v for v in r["ci95"])  # NaN, NaN


def test_diff_ci_checks_the_range_of_b_too():
    with pytest.raises(ValueError, match=r"diff_ci: the scores of b must lie in \[0, 1\]"):
        E.diff_ci(torch.zeros(2), torch.tensor([2.0, 0]))
    with pytest.raises(ValueError, match=r"diff_ci: the scores of b must lie in \[0, 1\]"):
        E.diff_ci(torch.ones(3), torch.tensor([0.5, -0.5, 1.0]))


def test_cluster_ci_refuses_non_integer_sizes():
    with pytest.raises(ValueError, match="expected integers 0 <= correct <= size"):
        E.cluster_ci([1, 2], [2.5, 3])


def test_cluster_ci_lower_bound_is_clipped_at_zero():
    # one correct image in three batches of 10: the t interval's lower end is below 0, reported as 0
    r = E.cluster_ci([0, 0, 1], [10, 10, 10])
    assert r["acc"] == pytest.approx(1 / 30)
    lo, hi = r["ci95"]
    assert lo == 0.0 and 1 / 30 < hi <= 1.0


def test_t_quantile_other_levels_beyond_df_200():
    # Student t 99.5% point for df 1000 (tables: 2.580754), not the 95% one (1.962339)
    assert E.t_quantile(1000, 0.99) == pytest.approx(2.580754, abs=2e-6)
    assert E.t_quantile(1000) == pytest.approx(1.962339, abs=2e-6)


def test_t_quantile_is_exact_up_to_df_200():
    # tables: t(0.975; 101) = 1.983731, t(0.975; 150) = 1.975905 (the series beyond 200 is 2.5e-6 off at 101)
    assert E.t_quantile(101) == pytest.approx(1.9837310, abs=2e-7)
    assert E.t_quantile(150) == pytest.approx(1.9759053, abs=2e-7)


def test_t_quantile_refuses_df_0():
    with pytest.raises(ValueError, match="df must be an integer >= 1, got 0"):
        E.t_quantile(0)
