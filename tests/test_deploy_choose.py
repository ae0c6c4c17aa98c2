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
    for bad in ("48", 4):  # "48" was the candidates [4, 8]; a lone 4 "'int' object is not iterable"
        with pytest.raises(ValueError, match=rf"candidates must be a list of precisions.*got {bad!r}"):
            choose_precisions(LATENCY, budget_ms=5, candidates=bad)


@pytest.mark.parametrize("budget", [float("nan"), float("inf"), 0, -1.0, "5"])
def test_a_budget_that_is_not_a_finite_positive_number_is_refused(budget):
    """A NaN budget passed every comparison and proposed every precision."""
    with pytest.raises(ValueError, match="budget_ms must be a finite number of ms > 0"):
        choose_precisions(LATENCY, budget)


def test_latencies_are_checked_and_take_latency_per_precision_rows():
    with pytest.raises(ValueError, match="the latency of precision 2 must be a finite number of ms >= 0, got nan"):
        choose_precisions({2: float("nan"), 4: 1.0}, 2.0)
    with pytest.raises(ValueError, match="gives precision 4 twice"):
        choose_precisions({4: 1.0, "4": 9.0}, 2.0)
    rows = {"2": {"median_ms": 1.0, "min_ms": 0.9, "reps": 3}, "8": {"median_ms": 3.0, "min_ms": 2.8, "reps": 3}}
    assert choose_precisions(rows, 2.0).precisions == [2, 8]
    # a mean equal to the budget fits, whatever the rounding of the sum (0.6 / 3 = 0.20000000000000004)
    assert choose_precisions({2: 0.1, 3: 0.2, 4: 0.3}, 0.2).precisions == [2, 3, 4]


def test_latency_from_records_keeps_networks_and_runs_apart():
    recs = [{"op": op, "shape": "b1", "bits": 8, "impl": "dwq_int", "median_ms": ms} for op, ms in (("a", 0.5), ("b", 50.0))]
    with pytest.raises(ValueError, match=r"several ops \['a', 'b'\]; pass op="):
        latency_from_records(recs)
    assert latency_from_records(recs, op="b") == {"8": 50.0}
    with pytest.raises(ValueError, match="the records hold precision 8 of 'a' 'b1' twice"):
        latency_from_records(recs[:1] * 2)


def test_latency_from_benchmark_records(tmp_path):
    recs = [{"op": "m", "shape": "b1", "bits": b, "impl": "dwq_int", "median_ms": 1.0 + b} for b in (2, 4)] + \
           [{"op": "m", "shape": "b1", "bits": 32, "impl": "dwq_int", "median_ms": 9.0},
            {"op": "m", "shape": "b8", "bits": 2, "impl": "dwq_int", "median_ms": 5.0},
            {"op": "m", "shape": "b1", "bits": 32, "impl": "torch_fp32", "median_ms": 7.0}]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recs))
    assert latency_from_records(str(path), shape="b1") == {"2": 3.0, "4": 5.0, "fp": 9.0}
    assert latency_from_records(path, shape="b1") == {"2": 3.0, "4": 5.0, "fp": 9.0}  # a Path was "not iterable"
    with pytest.raises(ValueError, match="several shapes"):
        latency_from_records(recs)
    assert latency_from_records(recs, impl="torch_fp32") == {"fp": 7.0}


def test_latency_per_precision_times_eval_forwards_and_leaves_a_training_model_as_it_was():
    """Timing a model in train mode updated every precision's BN statistics and ranges (58 of 108 state
    tensors of a small CNN) and timed train-mode forwards; nothing to time is a ValueError."""
    import torch

    from dwq.deploy import latency_per_precision
    from dwq.deploy.timing import time_round_robin

    m = small_cnn(precisions=[2, 8], width=4).train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    modes = []
    m.register_forward_pre_hook(lambda mod, args: modes.append(mod.training))
    lat = latency_per_precision(m, torch.rand(2, 1, 28, 28), budget_s=0.0, min_reps=1, max_reps=1)
    assert set(lat) == {"2", "8"} and modes and not any(modes) and m.training
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="latency_per_precision: precisions must not be empty"):
        latency_per_precision(m, torch.rand(2, 1, 28, 28), [])
    with pytest.raises(ValueError, match="latency_per_precision: precisions must not repeat"):
        latency_per_precision(m, torch.rand(2, 1, 28, 28), [2, "2"])
    for bad in ("0.5", None, float("nan"), -1.0, True):  # (a string failed after the work, NaN ran 50 rounds)
        with pytest.raises(ValueError, match=r"latency_per_precision: budget_s must be a finite number of seconds >= 0"):
            latency_per_precision(m, torch.rand(2, 1, 28, 28), budget_s=bad)
    with pytest.raises(ValueError, match="nothing to time"):
        time_round_robin({})


def test_profile_refuses_an_integer_model():
    """Its integer layers are neither nn.Conv2d nor nn.Linear: they dropped out of the count (28,384
    MACs of 141,280) and choose_precisions reported a wrong mean BitOPs."""
    from deploy_models import calibrated

    from dwq.deploy import convert
    from dwq.ops import HAS_EXT
    if not HAS_EXT:
        pytest.skip("dwq._C (the compiled extension) is not importable: no integer model to build")
    im = convert(calibrated(small_cnn(precisions=[4, None], width=4), (8, 1, 28, 28)))
    with pytest.raises(ValueError, match="profile counts fake-quant models: 'layers.conv2' is a layer of an integer model"):
        profile(im, (1, 1, 28, 28))


def test_round_robin_varies_which_function_runs_before_which():
    """A rotated fixed order gave each function the same predecessor in all but one slot a round, and
    torch's int8 conv, always after an fp32 conv, was timed 2x slower than alone."""
    from dwq.deploy.timing import round_orders, time_round_robin

    calls = []
    out = time_round_robin({k: (lambda k=k: calls.append(k)) for k in "abcd"}, budget_s=0.0, min_reps=12, max_reps=12)
    assert calls[:4] == list("abcd") and all(r["reps"] == 12 for r in out.values())  # warm-up, then 12 rounds
    rounds = [calls[4 + 4 * i: 8 + 4 * i] for i in range(12)]
    assert rounds == list(round_orders("abcd", 12)) and all(sorted(r) == list("abcd") for r in rounds)
    before_b = {r[r.index("b") - 1] for r in rounds if r[0] != "b"}
    assert len(before_b) == 3, before_b  # every other function ran right before b in some round
    calls.clear()
    time_round_robin({k: (lambda k=k: calls.append(k)) for k in "ab"}, budget_s=0.0, min_reps=2, max_reps=2, warm=True)
    assert calls[2:] == [k for r in round_orders("ab", 2) for k in (r[0], r[0], r[1], r[1])]  # each timed call warm


def test_record_bits_round_trips_through_latency_from_records():
    """dwq bench writes "bits" with record_bits and latency_from_records reads them back; benchmarks/
    keeps its own copy of the full-precision convention (records.py imports no dwq)."""
    import importlib.util
    import pathlib

    from dwq.deploy import RECORD_FP_BITS, record_bits

    assert [record_bits(p) for p in ("fp", None, 4, "8", (4, 8), "4w8a")] == [RECORD_FP_BITS, RECORD_FP_BITS, 4, 8,
                                                                            "4w8a", "4w8a"]
    recs = [{"op": "n", "shape": "b1", "bits": record_bits(p), "impl": "dwq_int", "median_ms": float(i)}
            for i, p in enumerate(["fp", "4", "4w8a"])]
    assert latency_from_records(recs) == {"fp": 0.0, "4": 1.0, "4w8a": 2.0}
    spec = importlib.util.spec_from_file_location(
        "records", pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "records.py")
    records = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(records)
    assert records.FLOAT32_BITS == RECORD_FP_BITS


def test_the_chosen_set_is_in_set_order_not_latency_order():
    # `dwq bench --budget-ms` printed "4 8 2" where 4 bits ran fastest
    ch = choose_precisions({2: 0.6, 4: 0.4, 8: 0.5, 16: 3.0, "fp": 0.45}, budget_ms=0.6)
    assert ch.precisions == [2, 4, 8, None] and list(ch.latency_ms) == ["4", "fp", "8", "2", "16"]


def test_bad_records_latencies_and_arguments_are_named():
    """Another dwq JSON (a dict), a record without median_ms, "1.0ms", None or True as a latency, records
    given as the latency, a model given as the cost: bare AttributeError/KeyError/TypeError, or accepted."""
    rec = {"op": "m", "shape": "b1", "bits": 4, "impl": "dwq_int", "median_ms": 1.0}
    with pytest.raises(ValueError, match="records must be a list of .* got dict"):
        latency_from_records({"clean": {"4": 0.9}})
    with pytest.raises(ValueError, match="got an item of type str"):
        latency_from_records(["4"])
    with pytest.raises(ValueError, match="the 'dwq_int' record of op 'm' shape 'b1' has no 'median_ms'"):
        latency_from_records([{k: v for k, v in rec.items() if k != "median_ms"}])
    with pytest.raises(ValueError, match="record of op 'm' shape 'b1': bits 0"):
        latency_from_records([{**rec, "bits": 0}])
    with pytest.raises(ValueError, match="the latency of precision 4 must be a finite number of ms >= 0, got 'x'"):
        latency_from_records([{**rec, "median_ms": "x"}])
    for bad in ("1.0ms", None, True, {"ms": 1.0}):
        with pytest.raises(ValueError, match="the latency of precision 4 must be a finite number of ms >= 0"):
            choose_precisions({4: bad, 8: 2.0}, 2.0)
    with pytest.raises(ValueError, match="latency must be a mapping .* use latency_from_records"):
        choose_precisions([rec], 2.0)
    with pytest.raises(ValueError, match="budget_ms must be a finite number of ms > 0, got True"):
        choose_precisions({4: 1.0}, True)
    with pytest.raises(ValueError, match="cost must be a dwq.quant.cost.CostReport .* got a SmallCNN"):
        choose_precisions({4: 1.0}, 2.0, cost=small_cnn(precisions=[4], width=2))
