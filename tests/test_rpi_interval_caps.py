"""RPI expectations are means over the set's P inference precisions of per-image outcomes: their intervals
may count up to P outcomes per image (mean_ci's cap n * P), not one, and not the number of attacks."""
import pytest
import torch
from test_protocol_edges import _ByPrecision, _data

from dwq import eval as E
from dwq.eval import protocols as P


def test_autoattack_expected_interval_counts_every_precision(monkeypatch):
    def unchanged(model, xb, yb, eps, **kw):
        return {"x_fooled": xb.clone(), "x_best": xb.clone(), "returned": xb.clone()}

    monkeypatch.setattr(P, "apgd_eot", unchanged)
    x, y = _data(400)  # right at 4 bits, wrong at 8: every image scores exactly 1/2
    r, c = E.autoattack_rpi(_ByPrecision(), x, y, [4, 8], 0.1, seed=0, steps=1, eot_iter=1, return_correct=True)
    assert torch.equal(c["expected"], torch.full((400,), 0.5))
    assert r["expected"] == E.mean_ci(c["expected"], 2)
    # (identical scores: the cap n * P binds, so one outcome per image would be a wider interval)
    assert r["expected"]["ci95"] != pytest.approx(E.mean_ci(c["expected"], 1)["ci95"])


def test_best_of_attacks_interval_counts_the_inference_precisions_not_the_attacks():
    # 3 attacks, 2 inference precisions, every image right at exactly one precision under every attack
    c = torch.zeros(3, 2, 300, dtype=torch.bool)
    c[:, 0] = True
    r, scores = E.rpi_best_of_attacks([c], return_scores=True)
    assert torch.equal(scores, torch.full((300,), 0.5)) and r["attacks"] == 3
    assert {k: r[k] for k in ("acc", "ci95", "n")} == E.mean_ci(scores, 2)
    assert r["ci95"] != pytest.approx(E.mean_ci(scores, 3)["ci95"])  # (the cap binds: identical scores)
