"""dwq.eval.intervals.t_quantile against Student's t density integrated in the test (Simpson's rule on
Γ((ν+1)/2) / (√(νπ) Γ(ν/2)) · (1 + x²/ν)^(-(ν+1)/2), solved by Newton's method): exact (1e-9) for every
df up to 200, odd and even, at 95% and at other levels, and within the docstring's relative error of
the Cornish-Fisher series only beyond 200 (at df 200 the series is 3e-7 off: the switch must not move);
a level of 0 refused like a level of 1."""
import math

import pytest

from dwq import eval as E


def _t_density(x, df):
    c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(c - (df + 1) / 2 * math.log1p(x * x / df))


def _central(t, df, steps=2000):
    """P(|T| <= t) = 2 ∫_0^t density, Simpson's rule (error ~1e-12 on [0, 13] with 2,000 steps)."""
    h = t / steps
    s = _t_density(0.0, df) + _t_density(t, df)
    s += sum((4 if i % 2 else 2) * _t_density(i * h, df) for i in range(1, steps))
    return 2 * s * h / 3


def _t_quantile_by_integration(df, level):
    """Newton's method on P(|T| <= t) = level, kept inside a bracket [lo, hi] (a step leaving it bisects)."""
    lo, hi = 0.0, 1.0
    while _central(hi, df) < level:
        lo, hi = hi, 2 * hi
    t = (lo + hi) / 2
    for _ in range(100):
        f = _central(t, df) - level
        lo, hi = (t, hi) if f < 0 else (lo, t)
        nxt = t - f / (2 * _t_density(t, df))
        nxt = nxt if lo < nxt < hi else (lo + hi) / 2
        if abs(nxt - t) < 1e-13:
            return nxt
        t = nxt
    raise AssertionError(f"no convergence for df {df}, level {level}")


@pytest.mark.parametrize("df", [3, 4, 7, 8, 33, 64, 199, 200])
def test_t_quantile_is_exact_for_df_up_to_200(df):
    """The A&S series of _t_central solved by bisection: the 97.5% point to 1e-9, odd and even df, and at
    df 200 still the exact one (the Cornish-Fisher series is 3e-7 off there)."""
    want = _t_quantile_by_integration(df, 0.95)
    got = E.t_quantile(df)
    assert got == pytest.approx(want, abs=1e-9), f"t_quantile({df}) = {got!r}, the t density gives {want!r}"


@pytest.mark.parametrize("df,level", [(3, 0.99), (8, 0.999), (12, 0.5), (200, 0.9)])
def test_t_quantile_is_exact_at_other_levels(df, level):
    """Off the 95% level (a two-sided level: P(|T| <= t) = level), still the exact quantile up to df 200."""
    want = _t_quantile_by_integration(df, level)
    got = E.t_quantile(df, level)
    assert got == pytest.approx(want, abs=1e-9), f"t_quantile({df}, {level}) = {got!r}, the t density gives {want!r}"


@pytest.mark.parametrize("df,level,rel", [(201, 0.95, 2e-7), (500, 0.95, 2e-7), (5000, 0.95, 2e-7),
                                          (300, 0.999, 2e-6)])
def test_t_quantile_beyond_df_200_is_within_the_documented_error(df, level, rel):
    """Beyond 200 the Cornish-Fisher series: relative error < 2e-7 at 95%, < 2e-6 at 99.9% (the docstring)."""
    want = _t_quantile_by_integration(df, level)
    got = E.t_quantile(df, level)
    assert got == pytest.approx(want, rel=rel), f"t_quantile({df}, {level}) = {got!r}, the t density gives {want!r}"


@pytest.mark.parametrize("df", [5, 300])
@pytest.mark.parametrize("level", [0.0, 0, -0.5, 1.5])
def test_t_quantile_refuses_a_level_of_zero_or_outside(df, level):
    """A level of 0 is no interval (it returned a quantile of 0, an interval of zero width); refused like 1."""
    with pytest.raises(ValueError, match=r"t_quantile: level must be in \(0, 1\), got"):
        E.t_quantile(df, level)
