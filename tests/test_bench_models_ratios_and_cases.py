"""benchmarks/bench_models.py's host logic on the CPU (a small CNN for the networks, the timing
stubbed): the ratio table's directions and worst widths, the case plan of main, the records'
faster fp32 layout and the logits check that runs before anything is timed."""
import sys
import types

import pytest
import torch

from dwq.models import small_cnn
from test_benchmarks_cli import _script


def _recs(bm, net, shape, ms):
    return [bm.record(net, shape, bits, impl, v, v / 2) for (impl, bits), v in ms.items()]


def test_ratio_table_directions_worst_widths_and_row_order():
    bm = _script("bench_models")
    ms = {("torch_fp32", 32): 10.0, ("dwq_int", 2): 2.0, ("dwq_int", 4): 4.0, ("dwq_int", 8): 5.0,
          ("dwq_int", 16): 10.0, ("fake_quant", 2): 8.0, ("fake_quant", 4): 6.0, ("fake_quant", 8): 10.0,
          ("brevitas", 8): 20.0}
    recs = (_recs(bm, "net", "b32 3x8x8", ms) + _recs(bm, "net", "b8 3x8x8", ms)
            + _recs(bm, "net", "b1 3x8x8", {("dwq_int", 8): 1.0}))  # no fp32 record: no row
    rows = bm.ratio_table(recs).splitlines()[2:]
    # speed-ups fp32 / dwq and fake-quant / dwq, each the smallest over widths <= 8; Brevitas / dwq at 8
    # bits; dwq 16-bit / 8-bit latency; rows by batch as a number (b8 before b32)
    row = "| 10.00 | 5.00 | 2.00x | 1.50x | 4.00x | 2.00 |"
    assert rows == [f"| net | b8 3x8x8 {row}", f"| net | b32 3x8x8 {row}"]


@pytest.fixture
def planned(monkeypatch):
    bm = _script("bench_models")
    calls, kept = [], []
    monkeypatch.setattr(bm, "bench_case", lambda net, size, batch, widths, brevitas_bits, budget_s, records, models: (
        calls.append((net, batch, widths, brevitas_bits, budget_s)),
        records.append(bm.record(net, f"b{batch}", 8, "dwq_int", 1.0, 1.0))))
    monkeypatch.setattr(bm, "finish", lambda records, *a, **k: calls.append(records))
    monkeypatch.setattr(bm, "keep_freed_memory", lambda: kept.append(1) or True)
    monkeypatch.setitem(sys.modules, "brevitas", types.ModuleType("brevitas"))  # (installed or not)
    return bm, calls, kept


def test_quick_cases_and_malloc_field(planned):
    bm, calls, kept = planned
    bm.main(["--quick", "--cases", "resnet50:1", "preact_resnet18:32"])
    *cases, records = calls
    assert cases == [("preact_resnet18", 32, [2, 4, 8, 16], [8], 3.0), ("resnet50", 1, [2, 4, 8, 16], [8], 3.0)]
    assert [r["malloc"] for r in records] == ["default", "default"] and kept == []


def test_full_plan_with_malloc_keep(planned):
    bm, calls, kept = planned
    bm.main(["--malloc", "keep"])
    *cases, records = calls
    assert cases == [(net, batch, list(range(2, 17)), [2, 4, 8, 12, 16], 8.0) for net, _, batch in bm.CASES]
    assert kept == [1] and {r["malloc"] for r in records} == {"keep"}


@pytest.fixture
def small(monkeypatch):
    """bench_case on a small CNN at widths 4 and 8, the round robin stubbed (each fn called once)."""
    bm = _script("bench_models")
    monkeypatch.setitem(bm.BUILD, "small", lambda ps: small_cnn(precisions=ps, width=8))
    calibrated, timed = [], {}
    real = bm.calibrate
    monkeypatch.setattr(bm, "calibrate", lambda model, size, widths: (calibrated.append(list(widths)),
                                                                       real(model, size, widths))[1])
    times = {"torch_fp32": (3.0, 1.0), "torch_fp32_cl": (2.0, 1.5)}

    def fake(fns, budget_s, min_reps, max_reps):
        for k, fn in fns.items():
            timed[k] = fn().shape
        return {k: {"median_ms": times.get(k[0], (1.0, 0.5))[0], "min_ms": times.get(k[0], (1.0, 0.5))[1]}
                for k in fns}

    monkeypatch.setattr(bm, "time_round_robin", fake)
    return bm, calibrated, timed


def test_bench_case_records_and_calibration(small):
    bm, calibrated, timed = small
    records = []
    bm.bench_case("small", (1, 28, 28), 2, [4, 8], [], 0.1, records, {})
    assert calibrated == [[4, 8, None]]  # full precision calibrated too: the fp32 baseline's BN branch
    assert set(timed) == {("torch_fp32", 32), ("torch_fp32_cl", 32), ("dwq_int", 4), ("dwq_int", 8),
                          ("fake_quant", 4), ("fake_quant", 8)}
    assert all(s == (2, 10) for s in timed.values())
    # fp32: one record, the faster layout by median with its own min_ms
    assert [(r["impl"], r["bits"], r["median_ms"], r["min_ms"]) for r in records] == [
        ("torch_fp32", 32, 2.0, 1.5), ("dwq_int", 4, 1.0, 0.5), ("fake_quant", 4, 1.0, 0.5),
        ("dwq_int", 8, 1.0, 0.5), ("fake_quant", 8, 1.0, 0.5)]
    assert all(r["op"] == "small" and r["shape"] == "b2 1x28x28" for r in records)


def test_bench_case_refuses_codes_off_by_more_than_one(small, monkeypatch):
    bm, _, timed = small
    monkeypatch.setattr(bm, "compare", lambda *a: {"8": {"rel_max_diff": 0.5}})
    for step, ok in ((1, True), (2, False)):
        monkeypatch.setattr(bm, "code_agreement", lambda *a, step=step: {"conv2": {"max_step": step}})
        timed.clear()
        if ok:
            bm.bench_case("small", (1, 28, 28), 2, [8], [], 0.1, [], {})
            assert timed
        else:
            with pytest.raises(AssertionError, match="codes differ by 2"):
                bm.bench_case("small", (1, 28, 28), 2, [8], [], 0.1, [], {})
            assert not timed  # nothing timed after a failed check
