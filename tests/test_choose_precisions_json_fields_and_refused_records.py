"""dwq.deploy.choose (found by mutation): PrecisionChoice.to_json reports every field of the choice (the budget,
not the expected latency, as budget_ms; the mean BitOPs), a latency must be a finite number (an infinite one, or
a number written as a string, is refused like NaN and "1.0ms"), and latency_from_records names what is missing:
records of no row of the asked impl/op/shape, a record without "bits" (and one without both fields)."""
import json
import math

import pytest

from dwq.deploy import choose_precisions, latency_from_records
from dwq.models import small_cnn
from dwq.quant.cost import profile

REC = {"op": "m", "shape": "b1", "bits": 4, "impl": "dwq_int", "median_ms": 1.0}


def test_to_json_reports_every_field_of_the_choice():
    """The JSON of a choice (benchmarks/deploy_report.py writes it) holds the chosen set, its mean latency,
    the budget it was chosen for, every candidate's latency and the set's mean BitOPs."""
    cost = profile(small_cnn(precisions=[2, 8], width=4), (1, 1, 28, 28))
    ch = choose_precisions({2: 1.0, 8: 2.0, 16: 9.0}, budget_ms=2.0, cost=cost)
    want = {"precisions": ["2", "8"], "expected_latency_ms": 1.5, "budget_ms": 2.0,
            "latency_ms": {"2": 1.0, "8": 2.0, "16": 9.0}, "mean_bitops": (cost.bitops(2) + cost.bitops(8)) / 2}
    got = ch.to_json()
    assert got == want, f"to_json gave {got}, want {want}"
    assert json.loads(json.dumps(got)) == want  # plain JSON
    assert choose_precisions({2: 1.0}, budget_ms=2.0).to_json()["mean_bitops"] is None  # no cost report given


@pytest.mark.parametrize("bad", [math.inf, -math.inf, -0.5, "1.5", "inf"])
def test_a_latency_that_is_not_a_finite_number_is_refused(bad):
    """An infinite latency (a timing that never finished) or a number in a string is refused, in a latency
    map and in a benchmark record, naming the precision; 0 ms is a latency (test_deploy_choose)."""
    msg = rf"the latency of precision 4 must be a finite number of ms >= 0, got {bad!r}"
    with pytest.raises(ValueError, match=msg):
        choose_precisions({4: bad, 8: 2.0}, 5.0)
    with pytest.raises(ValueError, match=msg):
        latency_from_records([{**REC, "median_ms": bad}])


@pytest.mark.parametrize("kw, msg", [(dict(impl="torch_fp32"), "no 'torch_fp32' records$"),
                                     (dict(op="n"), "no 'dwq_int' records of op 'n'$"),
                                     (dict(op="m", shape="b8"), "no 'dwq_int' records of op 'm' of shape 'b8'$")])
def test_records_without_a_row_of_the_asked_impl_op_or_shape_are_an_error(kw, msg):
    """Records holding nothing of the impl/op/shape asked for are a ValueError naming them, not an empty
    latency map (which choose_precisions then reports as "no candidates")."""
    with pytest.raises(ValueError, match=msg):
        latency_from_records([REC], **kw)


@pytest.mark.parametrize("drop, missing", [(("bits",), "'bits'"), (("bits", "median_ms"), "'bits' or 'median_ms'")])
def test_a_record_without_its_bits_is_named(drop, missing):
    """A record without "bits" is a ValueError naming the record and the field(s), not a bare KeyError."""
    rec = {k: v for k, v in REC.items() if k not in drop}
    with pytest.raises(ValueError, match=f"the 'dwq_int' record of op 'm' shape 'b1' has no {missing}$"):
        latency_from_records([rec])
