"""benchmarks/bench_layer_host.py (found by mutation): each record's times are the stand-in timer's
median and best per forward (a timed call runs FORWARDS forwards), and autocast is entered only in
mode eval_amp."""
import json

import torch

from test_benchmarks_cli import _script


def test_records_are_the_median_and_best_per_forward(tmp_path, monkeypatch):
    blh = _script("bench_layer_host")
    times = {"float": (2.0, 1.0), "rpt": (6.0, 3.0), "rpt_reuse": (4.0, 2.0)}  # ms per timed call
    monkeypatch.setattr(blh, "time_pair", lambda fns, device, reps, warmup: {k: times[k] for k in fns})
    out = tmp_path / "h.json"
    blh.main(["--device", "cpu", "--layers", "2", "--reps", "1", "--json", str(out)])
    recs = json.loads(out.read_text())
    assert len(recs) == 9 and {r["mode"] for r in recs} == {"eval", "eval_amp", "train"}
    for r in recs:
        med, best = times[r["impl"]]
        assert r["median_ms"] == round(med / blh.FORWARDS, 5) and r["min_ms"] == round(best / blh.FORWARDS, 5), r
        # (ms per call -> us per forward, over 2 layers)
        assert r["us_per_layer_added"] == round((med - 2.0) / blh.FORWARDS * 1e3 / 2, 2), r
        assert r["shape"] == "2 x conv3x3 8->8 4x4 b1" and r["device"] == "cpu x1 thread"


def test_autocast_is_entered_only_in_eval_amp(monkeypatch):
    blh = _script("bench_layer_host")
    seen = []
    real = torch.autocast

    def autocast(device_type, dtype=None, enabled=True):
        seen.append((device_type, dtype, enabled))
        return real(device_type, dtype=dtype, enabled=enabled)

    monkeypatch.setattr(blh.torch, "autocast", autocast)
    for mode in blh.MODES:
        blh.stack_fn("float", mode, torch.device("cpu"), 1)()
    assert seen == [("cpu", torch.bfloat16, False), ("cpu", torch.bfloat16, True), ("cpu", torch.bfloat16, False)]
