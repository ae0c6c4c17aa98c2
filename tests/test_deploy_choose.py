"""dwq.deploy.choose_precisions: the largest set whose mean latency fits the budget."""
import json

import pytest

from dwq.deploy import choose_precisions, latency_from_records
from dwq.models import small_cnn
from dwq.quant.cost import profile

# 8-bit hardware: widths 2..8 cost the same, 9..16 take about four 8-bit passes
LATENCY = {**{b: 1.0 for b in range(2, 9)}, **{b: 4.0 + 0.01 * b for b in range(9, 17)}}


def test_a_budget_of_the_8_bit_latency_admits_every_width_up_to_8():
    ch = choose_precisions(LATENCY, budget_ms=1.0)
    assert ch.precisions == [2, 3, 4, 5, 6, 7, 8] and ch.expected_latency_ms == 1.0


def test_a_larger_budget_adds_the_cheapest_wide_precisions():
    ch = choose_precisions(LATENCY, budget_ms=1.5)
    # 7 at 1 ms + 9 at 4.09 ms -> mean 1.386; adding 10 (4.10) -> mean 1.719 > 1.5
    assert ch.precisions == [2, 3, 4, 5, 6, 7, 8, 9]
    assert ch.expected_latency_ms == pytest.approx((7 + 4.09) / 8)
    every = choose_precisions(LATENCY, budget_ms=100)
    assert len(every.precisions) == 15


def test_candidates_restrict_and_cost_reports_bitops():
    cost = profile(small_cnn(precisions=list(range(2, 17)), width=8), (1, 1, 28, 28))
    ch = choose_precisions(LATENCY, budget_ms=2.0, candidates=[16, 12, 8, 4], cost=cost)
    assert ch.precisions == [4, 8]  # adding 12 gives (1 + 1 + 4.12) / 3 = 2.04 ms > 2 ms
    assert ch.mean_bitops == pytest.approx((cost.bitops(4) + cost.bitops(8)) / 2)
    assert ch.to_json()["precisions"] == ["4", "8"] and ch.budget_ms == 2.0


def test_keys_in_any_spelling_and_full_precision():
    ch = choose_precisions({"4": 1.0, "4w8a": 1.0, "fp": 3.0}, budget_ms=5)
    assert ch.precisions == [4, (4, 8), None]


def test_nothing_fits_and_missing_latency_are_errors():
    with pytest.raises(ValueError, match="no precision fits a budget of 0.5 ms: the fastest, 2, takes 1 ms"):
        choose_precisions(LATENCY, budget_ms=0.5)
    with pytest.raises(ValueError, match="no latency measured for candidate precision"):
        choose_precisions({4: 1.0}, budget_ms=5, candidates=[4, 6])


def test_latency_from_benchmark_records(tmp_path):
    recs = [{"op": "m", "shape": "b1", "bits": b, "impl": "dwq_int", "median_ms": 1.0 + b} for b in (2, 4)] + \
           [{"op": "m", "shape": "b1", "bits": 32, "impl": "dwq_int", "median_ms": 9.0},
            {"op": "m", "shape": "b8", "bits": 2, "impl": "dwq_int", "median_ms": 5.0},
            {"op": "m", "shape": "b1", "bits": 32, "impl": "torch_fp32", "median_ms": 7.0}]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recs))
    assert latency_from_records(str(path), shape="b1") == {"2": 3.0, "4": 5.0, "fp": 9.0}
    with pytest.raises(ValueError, match="several shapes"):
        latency_from_records(recs)
    assert latency_from_records(recs, impl="torch_fp32") == {"fp": 7.0}
