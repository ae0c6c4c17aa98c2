"""benchmarks/deploy_report.py, with its parts stubbed: main converts at the checkpoint's quantized
precisions only (full precision left out), runs the agreement and protocols unless --latency-only, and
writes --json with the checkpoint, its precisions and the seconds; agreement and codes are measured on all
the test images, the two protocols run the demo's PGD-10 (eps 0.1, step eps/4, seed 0) with both the paper
and the adaptive protocol; the latency trade-off times a model of every width 2..16 and skips (says, not
raises) a budget that no width fits."""
import json

import pytest
import torch
from torch.utils.data import TensorDataset

import dwq
from dwq.models import small_cnn
from test_benchmarks_cli import _script


@pytest.mark.parametrize("latency_only", [False, True])
def test_main_converts_the_quantized_set_and_writes_the_report(latency_only, tmp_path, monkeypatch, capsys):
    """main: convert gets the precision set less None, the report names the checkpoint and its precisions,
    the agreement and protocols run (on all the test images, --n-attack 500 by default) unless
    --latency-only, and --json holds the report."""
    dr = _script("deploy_report")
    model = small_cnn(precisions=[4, 8, None], width=4)
    x, y = torch.rand(6, 1, 28, 28), torch.zeros(6, dtype=torch.long)
    ck, out, seen = str(tmp_path / "last.pt"), tmp_path / "d.json", []
    monkeypatch.setattr(dr, "existing_checkpoint", lambda path: path)
    monkeypatch.setattr(dr, "load_trained_model", lambda path: (model, {"config": {"extra": {"dataset": "mnist5k"}}}))
    monkeypatch.setattr(dr, "convert", lambda m, ps: seen.append(("convert", m is model, list(ps))) or "IM")
    monkeypatch.setattr(dr, "load_mnist5k", lambda split: seen.append(("data", split)) or TensorDataset(x, y))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.append(("threads", n)))
    monkeypatch.setattr(dr, "agreement_and_protocols", lambda m, im, xs, ys, ps, n, rep: seen.append(
        ("agreement", m is model, im, len(xs), len(ys), list(ps), n)) or rep.update(agreement={"agree": 1.0}))
    monkeypatch.setattr(dr, "latency_tradeoff", lambda c, xs, rep: seen.append(("latency", c, len(xs))) or rep.update(
        latency_ms={"b1": {"4": 1.0}}))
    dr.main(["--checkpoint", ck, "--json", str(out)] + (["--latency-only"] if latency_only else []))
    want = [("threads", 2), ("convert", True, [4, 8]), ("data", "test")]
    want += [] if latency_only else [("agreement", True, "IM", 6, 6, [4, 8], 500)]
    assert seen == want + [("latency", ck, 6)], seen
    rep = json.loads(out.read_text())
    assert (rep["checkpoint"], rep["precisions"], rep["latency_ms"]) == (ck, ["4", "8"], {"b1": {"4": 1.0}}), rep
    assert ("agreement" in rep) != latency_only and rep["seconds"] >= 0, rep


def test_agreement_on_every_image_and_the_protocols_with_the_demo_attack(monkeypatch, capsys):
    """compare and code_agreement (per precision) see every test image; both evaluations run PGD-10 at
    eps 0.1, step 0.025, seed 0, the paper and the adaptive protocols, on the first --n-attack images."""
    dr = _script("deploy_report")
    seen, kws = [], []

    def fake_evaluate(m, x, y, ps, **kw):
        kws.append(kw)
        acc = {"acc": 0.5, "ci95": [0.4, 0.6]}
        return {"rpi": {"clean": acc, "pgd_paper": acc, "pgd_adaptive": acc, "pgd_adaptive_worst_case": acc}}

    monkeypatch.setattr(dr.E, "evaluate", fake_evaluate)
    monkeypatch.setattr(dr, "compare", lambda model, im, x: seen.append(("compare", len(x))) or {"agree": 1.0})
    monkeypatch.setattr(dr, "format_comparison", lambda c: "agree")
    monkeypatch.setattr(dr, "code_agreement", lambda model, im, x, q: seen.append(("codes", len(x), q)) or {
        "conv": dict(differ=0, codes=9, max_step=0)})
    monkeypatch.setattr(dr, "StraightThrough", lambda im, model: "ST")
    rep = {}
    dr.agreement_and_protocols("MODEL", "IM", torch.rand(10, 1, 28, 28), torch.zeros(10, dtype=torch.long),
                               [4, 8], 3, rep)
    assert seen == [("compare", 10), ("codes", 10, 4), ("codes", 10, 8)], seen
    want = dict(attack="pgd", epsilon=0.1, alpha=0.025, steps=10, protocols=("paper", "adaptive"), seed=0,
                per_image=False)
    assert kws == [want, want], kws


def test_latency_times_every_width_and_skips_a_budget_no_width_fits(tmp_path, monkeypatch, capsys):
    """The timed model has every width 2..16; with the 8-bit median the fastest and rounded down into a
    budget that nothing fits (80.0004 ms -> 80.0 ms), that budget is printed with the reason and skipped,
    the others chosen."""
    dr = _script("deploy_report")
    ck = tmp_path / "last.pt"
    torch.save({"config": {"extra": {"network": "small_cnn", "dataset": "mnist5k", "width": 4}}}, str(ck))
    sets = []

    def fake_latency(model, x, budget_s, max_reps):
        sets.append(dwq.precision_set(model))
        return {str(b): {"median_ms": 80.0004 + abs(b - 8), "min_ms": 1.0} for b in range(2, 17)}

    monkeypatch.setattr(dr, "latency_per_precision", fake_latency)
    rep = {}
    dr.latency_tradeoff(str(ck), torch.rand(100, 1, 28, 28), rep)
    assert sets == [list(range(2, 17))] * 2, f"timed precision sets: {sets}"
    want = [round(80.0004 * f, 3) for f in (1.1, 1.2, 1.3)]  # (88.0, 96.0, 104.001)
    assert [c["budget_ms"] for c in rep["choices"]] == want, rep["choices"]
    assert "budget 80.0 ms: no precision fits a budget of 80.0 ms" in capsys.readouterr().out
