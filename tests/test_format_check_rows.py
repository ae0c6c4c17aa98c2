"""dwq.deploy.format_check: one row per precision with the integer and fake-quant latencies, the
speed-up fake-quant / integer, both accuracies and the weight bytes (or "float" at full precision)."""
from dwq.deploy import format_check


def _rep():
    return {"precisions": ["4", "fp"], "skipped": ["2"], "convert_seconds": 0.5, "seconds": 2.0,
            "latency_batch": 8,
            "agreement": {"4": {"n": 8, "top1_agreement": 1.0, "max_abs_diff": 0.0, "rel_max_diff": 0.0},
                          "fp": {"n": 8, "top1_agreement": 1.0, "max_abs_diff": 0.0, "rel_max_diff": 0.0}},
            "accuracy": {"4": {"dwq_int": 0.5, "fake_quant": 0.75}, "fp": {"dwq_int": 0.875, "fake_quant": 0.875}},
            "latency_ms": {"dwq_int": {"4": 1.0, "fp": 3.0}, "fake_quant": {"4": 4.0, "fp": 1.5}},
            "sizes": [{"precision": "4", "weight_bytes": 2500}, {"precision": "fp", "weight_bytes": 0}]}


def test_format_check_rows_give_speed_up_accuracies_and_sizes(monkeypatch):
    import dwq.deploy.check as check

    monkeypatch.setattr(check, "format_comparison", lambda rows: "<comparison>")
    lines = format_check(_rep(), title="T").splitlines()
    assert lines[0] == "T: logits against the fake-quant model on 8 images"
    row4 = next(l for l in lines if l.split() and l.split()[0] == "4")
    rowfp = next(l for l in lines if l.split() and l.split()[0] == "fp")
    assert row4.split() == ["4", "1.000", "4.000", "4.00x", "50.0%", "75.0%", "2.5", "kB"], row4
    assert rowfp.split() == ["fp", "3.000", "1.500", "0.50x", "87.5%", "87.5%", "float"], rowfp
    assert lines[-1] == "not converted (no activation range: never trained): 2"
