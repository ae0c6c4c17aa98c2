"""dwq.eval protocols hand their settings to the attacks they run, with stub attacks that record what
they were given: EOT-PGD attacks the mean over every precision of the set with the caller's restarts and
a generator seeded with the caller's seed, AutoAttack rand's APGD runs and per-image draws take the
caller's seed, and the paper protocol's replica draws attack and inference indices from their own
ranges when the matrix is not square."""
import pytest
import torch
from test_protocol_edges import _ByPrecision, _data

from dwq import eval as E
from dwq.eval import protocols as P


def test_adaptive_protocol_attacks_every_precision_with_the_callers_restarts_and_seed(monkeypatch):
    seen = []

    def eot_pgd(fns, xb, yb, eps, alpha, steps, restarts=1, generator=None):
        seen.append(dict(precisions=[f.precision for f in fns], eps=eps, alpha=alpha, steps=steps,
                         restarts=restarts, seed=generator.initial_seed()))
        return xb.clone()  # unchanged: right at 4 bits, wrong at 8

    monkeypatch.setattr(P, "eot_pgd", eot_pgd)
    x, y = _data(40)
    r, allc = E.adaptive_protocol(_ByPrecision(), x, y, [4, 8], 0.1, 0.02, 3, restarts=3, batch_size=16,
                                  seed=5, return_correct=True)
    assert len(seen) == 3  # 16 + 16 + 8 images
    assert all(s == dict(precisions=[4, 8], eps=0.1, alpha=0.02, steps=3, restarts=3, seed=5) for s in seen), seen
    assert {k: v["acc"] for k, v in r["per_precision"].items()} == {"4": 1.0, "8": 0.0}
    assert r["expected"] == E.mean_ci(allc.float().mean(0), 2) and r["expected"]["acc"] == pytest.approx(0.5)
    assert r["worst_case"]["acc"] == 0.0  # right at 4 bits only: no image is right at every precision


def test_autoattack_rpi_draws_and_attacks_with_the_callers_seed(monkeypatch):
    seen = []

    def apgd_eot(model, xb, yb, eps, **kw):
        seen.append((kw["seed"], model._g.initial_seed()))
        return {"x_fooled": xb.clone(), "x_best": xb.clone(), "returned": xb.clone()}

    monkeypatch.setattr(P, "apgd_eot", apgd_eot)
    x, y = _data(8)
    E.autoattack_rpi(_ByPrecision(), x, y, [4, 8], 0.1, seed=7, steps=1, eot_iter=1)
    assert seen == [(7, 7), (7, 7)]  # APGD-CE and APGD-DLR, each with the per-image draws seeded 7


@pytest.mark.parametrize("A,P_", [(1, 3), (3, 1)])
def test_paper_protocol_replica_draws_each_index_from_its_own_range(A, P_):
    """[A, P, N] with A != P: the attack index is drawn from A precisions, the inference one (and the
    clean one) from P; each range is visited in full over enough batches."""
    N = 300
    tm = torch.rand(A, P_, N, generator=torch.Generator().manual_seed(0)) < 0.5
    clean = torch.ones(P_, N, dtype=torch.bool)
    r = E.paper_protocol(tm, clean, sampled_batch=5, seed=0)
    b = r["robust_sampled"]["batches"]
    assert set(r["clean_sampled"]["batches"]["precision"]) == set(range(P_))
    assert set(b["attack"]) == set(range(A)) and set(b["inference"]) == set(range(P_))
    assert b["correct"] == [int(tm[a, p, 5 * i:5 * i + 5].sum()) for i, (a, p) in enumerate(zip(b["attack"], b["inference"]))]
