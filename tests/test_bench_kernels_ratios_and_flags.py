"""benchmarks/bench_kernels.py's host logic on the CPU, with the timing and the kernels stubbed where
they would cost time: the ratio table's direction and its baselines, the records' median/min and the
faster fp32 layout, the round robin's settings, the --quick/--threads plan, and the check of the
dwq result before it is timed."""
import sys
import types

import pytest
import torch

from test_benchmarks_cli import _script


def _rec(bk, op, shape, impl, bits, ms):
    return bk.record(op, shape, bits, impl, ms, ms / 2)


def test_ratio_table_is_baseline_over_dwq_and_picks_its_baselines():
    bk = _script("bench_kernels")
    g, c = ("gemm", "8x8x8"), ("conv3x3", "b1 8->8 4x4 s1")
    recs = [_rec(bk, *g, "dwq", 2, 1.6), _rec(bk, *g, "dwq", 8, 2.0), _rec(bk, *g, "dwq", 16, 5.0),
            _rec(bk, *g, "torch_int_mm", 8, 6.0), _rec(bk, *g, "torch_qlinear", 8, 4.0),
            _rec(bk, *g, "torch_fp32", 32, 8.0),
            _rec(bk, *c, "dwq", 4, 3.0), _rec(bk, *c, "dwq", 8, 2.0), _rec(bk, *c, "dwq", 16, 4.0),
            _rec(bk, *c, "torch_qconv", 8, 3.0), _rec(bk, *c, "torch_fp32", 32, 6.0)]
    rows = bk.ratio_table(recs).splitlines()[2:]
    # speed-ups: the faster int8 baseline / dwq's best width <= 8, fp32 / that; 16-bit over 8-bit latency
    assert rows == ["| conv3x3 | b1 8->8 4x4 s1 | 2.000 | 1.50x (torch_qconv) | 3.00x | 2.00 |",
                    "| gemm | 8x8x8 | 2.000 | 2.50x (torch_qlinear) | 5.00x | 2.50 |"]
    # the best-of table reads min_ms (half of each median here: the same ratios, half the 8-bit latency)
    assert bk.ratio_table(recs, "min_ms").splitlines()[3].startswith("| gemm | 8x8x8 | 1.000 | 2.50x (torch_qlinear)")


def test_add_timed_records_median_and_min_of_the_faster_fp32_layout(monkeypatch):
    bk = _script("bench_kernels")
    seen = {}
    times = {("torch_fp32", 32): (3.0, 1.0), ("torch_fp32_cl", 32): (2.0, 1.5), ("dwq", 8): (1.0, 0.5)}

    def fake(fns, budget_s, min_reps, max_reps, warm=False):
        seen.update(budget_s=budget_s, warm=warm, grad=[torch.is_grad_enabled() for fn in fns.values() if fn()])
        return {k: {"median_ms": times[k][0], "min_ms": times[k][1]} for k in fns}

    monkeypatch.setattr(bk, "deploy_time_round_robin", fake)
    records = []
    bk.add_timed(records, "gemm", "8x8x8", [(impl, bits, lambda: True) for impl, bits in times], 0.25)
    # fp32: the channels_last layout (faster by median), with its own min_ms; no "_cl" record
    assert records == [bk.record("gemm", "8x8x8", 32, "torch_fp32", 2.0, 1.5),
                       bk.record("gemm", "8x8x8", 8, "dwq", 1.0, 0.5)]
    # every candidate timed warm, under the given budget, without autograd (Brevitas would record a graph)
    assert seen == {"budget_s": 0.25, "warm": True, "grad": [False] * 3}


def test_codes_are_uint8_up_to_8_bits_and_in_range():
    bk = _script("bench_kernels")
    g = torch.Generator().manual_seed(0)
    for bits in (2, 8, 9, 16):
        c = bk.codes((64, 64), bits, g)
        assert c.dtype == (torch.uint8 if bits <= 8 else torch.int32), bits
        assert int(c.min()) >= 0 and int(c.max()) < 1 << bits and int(c.max()) >= 1 << (bits - 1), bits


@pytest.fixture
def planned(monkeypatch):
    """bench_kernels.main with the benchmarks stubbed: [(what, args)] of each call, and the threads set."""
    bk = _script("bench_kernels")
    calls, threads = [], []
    monkeypatch.setattr(bk, "bench_gemm", lambda *a: calls.append(("gemm", a[:3], a[3], a[5], a[6])))
    monkeypatch.setattr(bk, "bench_conv", lambda *a: calls.append(("conv", a[:5], a[5], a[7], a[8])))
    monkeypatch.setattr(bk, "finish", lambda *a, **k: None)
    monkeypatch.setattr(bk.torch, "set_num_threads", threads.append)
    monkeypatch.setitem(sys.modules, "brevitas", types.ModuleType("brevitas"))  # (installed or not)
    return bk, calls, threads


def test_quick_plan(planned):
    bk, calls, threads = planned
    bk.main(["--quick"])
    assert threads == []
    assert [c[1] for c in calls] == bk.GEMMS + [(b, *cv) for b in (1, 32) for cv in bk.QUICK_CONVS]
    assert all(c[2:] == ([2, 4, 8, 12, 16], [8], 1.5) for c in calls)


def test_full_plan_and_threads(planned):
    bk, calls, threads = planned
    bk.main(["--threads", "1"])
    assert threads == [1]
    assert [c[1] for c in calls] == bk.GEMMS + [(b, *cv) for b in (1, 32) for cv in bk.CONVS]
    assert all(c[2:] == (list(range(2, 17)), [2, 4, 8, 12, 16], 3.0) for c in calls)


def test_json_in_a_missing_folder_is_refused_before_the_run(planned, tmp_path, capsys):
    bk, calls, _ = planned
    with pytest.raises(SystemExit) as e:
        bk.main(["--quick", "--json", str(tmp_path / "missing" / "k.json")])
    assert e.value.code == 2 and "--json" in capsys.readouterr().err.strip().splitlines()[-1] and calls == []


def test_gemm_result_is_checked_before_it_is_timed(monkeypatch):
    bk = _script("bench_kernels")
    timed = []
    monkeypatch.setattr(bk, "add_timed", lambda records, op, shape, cands, budget_s: timed.append(cands))
    bk.bench_gemm(8, 16, 32, [4], [], [], 0.1)
    (cands,) = timed
    assert [(impl, bits) for impl, bits, _ in cands] == [("torch_fp32", 32), ("torch_int_mm", 8),
                                                         ("torch_qlinear", 8), ("dwq", 4)]
    assert cands[-1][2]().shape == (8, 16)
    real = bk.q.qgemm_acc
    monkeypatch.setattr(bk.q, "qgemm_acc", lambda *a: real(*a) + 1)  # a kernel one off
    with pytest.raises(AssertionError, match="dwq check failed"):
        bk.bench_gemm(8, 16, 32, [4], [], [], 0.1)
    assert len(timed) == 1
