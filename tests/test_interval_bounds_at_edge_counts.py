"""dwq.eval.intervals at edge counts: no images or no clusters (NaN, not an error or [0, 1]), every
image right (the upper bound is exactly 1), a tiny positive mean (the lower bound is clipped at 0,
not a rounding error below it), a count of images that is not an int, and cluster_ci's 'every ratio
equal' shortcut taken only when every cluster's ratio is the overall one."""
import math

import pytest
import torch

from dwq import eval as E


def _nan_pair(ci):
    return len(ci) == 2 and all(math.isnan(v) for v in ci)


def test_acc_ci_of_no_images_is_nan_not_an_error():
    for r in (E.acc_ci((0, 0)), E.acc_ci(torch.zeros(0, dtype=torch.bool))):
        assert math.isnan(r["acc"]) and _nan_pair(r["ci95"]) and r["n"] == 0


def test_cluster_ci_of_no_clusters_is_nan_not_the_whole_range():
    r = E.cluster_ci([], [])
    assert math.isnan(r["acc"]) and _nan_pair(r["ci95"])
    assert r["n"] == 0 and r["clusters"] == 0


@pytest.mark.parametrize("n", [1, 10, 13, 25, 27, 100, 999])
def test_every_image_right_has_an_upper_bound_of_exactly_one(n):
    # Wilson's c + h is 1 in exact arithmetic; computed, it is 1 - 1e-16 for many n (10, 13, 25, ...)
    assert E.acc_ci((n, n))["ci95"][1] == 1.0
    assert E.acc_ci(torch.ones(n, dtype=torch.bool))["ci95"][1] == 1.0
    assert E.mean_ci(torch.ones(n), 5)["ci95"][1] == 1.0


def test_a_tiny_positive_mean_has_a_lower_bound_of_zero_not_below():
    # p = 1e-17 over 10 images: c - h cancels to a negative rounding error; an accuracy bound is >= 0
    s = torch.zeros(10, dtype=torch.float64)
    s[0] = 1e-16
    r = E.mean_ci(s, 3)
    assert r["acc"] == pytest.approx(1e-17)
    assert r["ci95"][0] == 0.0 and 0.0 < r["ci95"][1] < 1.0


@pytest.mark.parametrize("pair", [(2, 4.0), (2, 4.5), (2, "4")])
def test_acc_ci_refuses_a_count_of_images_that_is_not_an_int(pair):
    with pytest.raises(ValueError, match="expected integers 0 <= correct <= n"):
        E.acc_ci(pair)


def test_cluster_ci_takes_the_t_interval_when_only_some_clusters_match_the_overall_ratio():
    # p = 0.5; clusters 0 and 3 sit at 0.5, clusters 1 and 2 do not: spread to measure, so the ratio
    # estimator's t interval (se = sqrt((0 + 4 + 4 + 0) / (3 * 4)) / 10), not Wilson's over 4 draws
    r = E.cluster_ci([5, 3, 7, 5], [10, 10, 10, 10])
    h = E.t_quantile(3) * (8 / 12) ** 0.5 / 10
    assert r["acc"] == 0.5 and r["n"] == 40 and r["clusters"] == 4
    assert r["ci95"] == pytest.approx([0.5 - h, 0.5 + h], abs=1e-12)
    assert r["ci95"][0] == pytest.approx(0.2401543, abs=1e-6)
