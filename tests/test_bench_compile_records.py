"""benchmarks/bench_compile.py (found by mutation): its records on a stand-in clock, with torch.compile
stubbed (the steps run for real, on a tiny small_cnn): median_ms and min_ms of each impl in ms, over
the steps of every precision of every rep, and the warm-up in seconds."""
import types

import torch

from dwq.models import small_cnn
from test_benchmarks_cli import _script


def test_train_step_records_are_the_medians_and_mins_in_ms(monkeypatch):
    bc = _script("bench_compile")
    monkeypatch.setitem(bc.CASES, "small_cnn",
                        (lambda ps: small_cnn(precisions=ps, width=4, switchable_bn=True), (1, 8, 8), 4, [2, 4]))
    monkeypatch.setattr(bc, "inductor_exact_division", lambda: True)
    compiled_calls = []

    def fake_compile(m):
        def compiled(x):
            compiled_calls.append(x.shape[0])
            return m(x)
        return compiled

    monkeypatch.setattr(bc.torch, "compile", fake_compile)
    orders = []  # each rep's order is drawn (eager always ran first); here the one the clock below follows

    def round_orders(names, rounds):
        orders.append((list(names), rounds))
        return [["eager", "compiled"]] * rounds

    monkeypatch.setattr(bc, "round_orders", round_orders)
    # perf_counter pairs: the warm-up (5 s), then per rep eager p2, eager p4, compiled p2, compiled p4
    durations = [5.0] + [0.001, 0.002, 0.004, 0.005] + [0.003, 0.010, 0.006, 0.020]
    clock = iter([v for d in durations for v in (100.0, 100.0 + d)])
    monkeypatch.setattr(bc, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    eager, compiled, warm = bc.bench("small_cnn", torch.device("cpu"), steps=1, reps=2)
    assert next(clock, None) is None  # every step timed, nothing else
    assert orders == [(["eager", "compiled"], 2)]
    assert compiled_calls  # the compiled model ran
    shape = "small_cnn b4 1x8x8 PGD-1"
    for r, impl, med, best in ((eager, "eager", 2.5, 1.0), (compiled, "compiled", 5.5, 4.0)):
        assert (r["op"], r["shape"], r["bits"], r["impl"], r["device"]) == ("train_step", shape, None, impl, "cpu")
        assert abs(r["median_ms"] - med) < 1e-6 and abs(r["min_ms"] - best) < 1e-6, r
        assert r["precisions"] == ["2", "4"]
    assert (warm["op"], warm["impl"], warm["median_ms"], warm["min_ms"]) == ("compile_warmup", "compiled", None, None)
    assert abs(warm["warmup_s"] - 5.0) < 1e-9 and warm["shape"] == shape
