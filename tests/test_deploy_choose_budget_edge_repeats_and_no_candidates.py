"""dwq.deploy.choose_precisions at edges test_deploy_choose.py leaves open: a mean exactly at the budget's
tolerance (1e-9 of the budget) fits and one ulp more does not, a candidate given twice (in two spellings) counts
once, and no candidates at all is a named ValueError."""
import math

import pytest

from dwq.deploy import choose_precisions


@pytest.mark.parametrize("budget", [0.2, 1.0, 2.5])
@pytest.mark.parametrize("n", [1, 2])  # (sums of two equal floats are exact)
def test_a_mean_at_the_budget_within_its_tolerance_fits_and_one_ulp_more_does_not(budget, n):
    """The fit test forgives 1e-9 of the budget (rounding of the sum), inclusively: a mean of exactly
    budget * (1 + 1e-9) fits, the next float above it does not."""
    edge = budget * (1 + 1e-9)
    over = math.nextafter(edge, math.inf)
    lat = {b: edge for b in range(2, 2 + n)}
    ch = choose_precisions(lat, budget)
    assert ch.precisions == list(range(2, 2 + n)), f"a mean of {edge!r} at a budget of {budget} must fit"
    with pytest.raises(ValueError, match=f"no precision fits a budget of {budget} ms"):
        choose_precisions({b: over for b in range(2, 2 + n)}, budget)


@pytest.mark.parametrize("candidates", [[4, "4", 8], [8, 4, 8], [(4, 4), 4, "8", 8]])
def test_a_candidate_given_twice_counts_once(candidates):
    """A repeated candidate (the same precision in another spelling too) is one precision of the set: it is
    neither proposed twice nor counted twice in the mean (with 4 counted twice, 4 4 8 averaged 1.67 ms)."""
    ch = choose_precisions({4: 1.0, 8: 3.0, 16: 9.0}, budget_ms=2.0, candidates=candidates)
    assert ch.precisions == [4, 8], f"repeated candidates {candidates!r} gave {ch.precisions}"
    assert ch.expected_latency_ms == 2.0


@pytest.mark.parametrize("latency, candidates", [({}, None), ({4: 1.0}, []), ({4: 1.0}, ())],
                         ids=["no-latency", "empty-list", "empty-tuple"])
def test_no_candidates_is_a_named_error(latency, candidates):
    """No candidate at all (an empty latency map, or candidates=[]) is "no candidates", not an IndexError from
    the "no precision fits" message looking for the fastest one."""
    with pytest.raises(ValueError, match="choose_precisions: no candidates"):
        choose_precisions(latency, budget_ms=1.0, candidates=candidates)
