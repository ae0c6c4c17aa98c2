"""benchmarks/deploy_report.py's report, fast: the latency trade-off (every width 2..16 timed at
batch 1 and 100, the budgets from the 8-bit median at batch 100, choices on the batch-100 medians)
with the timing stubbed, the two protocols each on its own model, and a non-MNIST checkpoint refused."""

import pytest
import torch

from test_benchmarks_cli import _script


def test_latency_tradeoff_budgets_from_the_8_bit_median_at_batch_100(tmp_path, monkeypatch, capsys):
    dr = _script("deploy_report")
    ck = tmp_path / "last.pt"
    torch.save({"config": {"extra": {"network": "small_cnn", "dataset": "mnist5k", "width": 4}}}, str(ck))
    timed, chosen = [], []

    def fake_latency(model, x, budget_s, max_reps):
        timed.append(len(x))
        # medians and mins that differ, and differ by batch, so each field and batch can be told apart
        return {str(b): {"median_ms": len(x) * b / 10, "min_ms": len(x) * b / 20} for b in range(2, 17)}

    real_choose = dr.choose_precisions

    def spy_choose(lat, budget, cost):
        chosen.append((dict(lat), budget))
        return real_choose(lat, budget, cost=cost)

    monkeypatch.setattr(dr, "latency_per_precision", fake_latency)
    monkeypatch.setattr(dr, "choose_precisions", spy_choose)
    rep = {}
    dr.latency_tradeoff(str(ck), torch.rand(100, 1, 28, 28), rep)
    assert timed == [1, 100]
    assert rep["latency_ms"]["b1"] == {str(b): b / 10 for b in range(2, 17)}
    assert rep["latency_ms"]["b100"] == {str(b): 10.0 * b for b in range(2, 17)}
    assert rep["latency_min_ms"]["b100"] == {str(b): 5.0 * b for b in range(2, 17)}
    assert [b for _, b in chosen] == [80.0, 88.0, 96.0, 104.0]  # the 8-bit median (80 ms) x 1.0 .. 1.3
    assert all(lat == rep["latency_ms"]["b100"] for lat, _ in chosen)
    assert [c["budget_ms"] for c in rep["choices"]] == [80.0, 88.0, 96.0, 104.0]
    for c in rep["choices"]:
        assert c["expected_latency_ms"] <= c["budget_ms"]


def test_protocols_run_on_the_fake_quant_model_and_the_integer_one(monkeypatch, capsys):
    dr = _script("deploy_report")
    calls = []

    def fake_evaluate(m, x, y, ps, **kw):
        calls.append((m, len(x), len(y), list(ps)))
        base = 0.9 if m == "MODEL" else 0.8
        acc = lambda d: {"acc": base - d, "ci95": [base - d - 0.05, base - d + 0.05]}  # noqa: E731
        return {"rpi": {"clean": acc(0), "pgd_paper": acc(0.1), "pgd_adaptive": acc(0.2),
                        "pgd_adaptive_worst_case": acc(0.3)}}

    monkeypatch.setattr(dr.E, "evaluate", fake_evaluate)
    monkeypatch.setattr(dr, "compare", lambda model, im, x: {"agree": 1.0})
    monkeypatch.setattr(dr, "format_comparison", lambda c: "agree")
    monkeypatch.setattr(dr, "code_agreement", lambda model, im, x, q: {"conv": dict(differ=0, codes=9, max_step=0)})
    monkeypatch.setattr(dr, "StraightThrough", lambda im, model: "ST(" + im + ")")
    rep = {}
    x, y = torch.rand(10, 1, 28, 28), torch.zeros(10, dtype=torch.long)
    dr.agreement_and_protocols("MODEL", "IM", x, y, [4, 8], 3, rep)
    assert calls == [("MODEL", 3, 3, [4, 8]), ("ST(IM)", 3, 3, [4, 8])]
    assert list(rep["protocols"]) == ["fake_quant", "dwq_int"] and list(rep["codes"]) == ["4", "8"]
    for name, base in (("fake_quant", 0.9), ("dwq_int", 0.8)):
        got = {k: v["acc"] for k, v in rep["protocols"][name].items()}
        assert got == pytest.approx({"clean": base, "pgd_paper": base - 0.1, "pgd_adaptive": base - 0.2,
                                     "worst_case": base - 0.3})


def test_a_checkpoint_of_another_dataset_is_refused(tmp_path, monkeypatch, capsys):
    dr = _script("deploy_report")
    ck = tmp_path / "last.pt"
    ck.write_bytes(b"")
    monkeypatch.setattr(dr, "existing_checkpoint", lambda path: path)
    monkeypatch.setattr(dr, "load_trained_model", lambda path: (
        torch.nn.Linear(1, 1), {"config": {"extra": {"dataset": "cifar10"}}}))
    converted = []
    monkeypatch.setattr(dr, "convert", lambda *a: converted.append(a))
    with pytest.raises(SystemExit) as e:
        dr.main(["--checkpoint", str(ck), "--latency-only"])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and f"--checkpoint {ck}: a cifar10 model" in last and converted == []
