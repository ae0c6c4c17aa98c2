"""dwq.eval protocols at their edges, on hand-made correctness tensors and stub models whose output
depends only on their precision (or on a marker in the image): the RPI interval's outcome count, the
sampled replica's last short batch, the best-of-attacks score, and AutoAttack's two counts."""
import pytest
import torch
from torch import nn

from dwq import eval as E
from dwq.eval import protocols as P
from dwq.nn import QLinear


def test_paper_protocol_interval_counts_every_attack_and_inference_outcome():
    """Each image has A * P outcomes behind its score (A attack x P inference precisions): the robust
    interval's effective size is capped at n * A * P, not n * P (with identical scores the cap binds,
    and an interval sqrt(A) too wide was reported)."""
    A = P_ = 3
    n = 200
    tm = torch.zeros(A, P_, n, dtype=torch.bool)
    tm[0, :, :] = True          # 3 of 9 outcomes
    tm[1, 0, :] = True          # 4 of 9: every image scores exactly 4/9
    r = E.paper_protocol(tm)
    scores = tm.float().mean((0, 1))
    assert torch.allclose(scores, torch.full((n,), 4 / 9))
    want = E.mean_ci(scores, A * P_)
    assert r["robust"]["acc"] == pytest.approx(want["acc"])
    assert r["robust"]["ci95"] == pytest.approx(want["ci95"])
    assert r["robust"]["ci95"] != pytest.approx(E.mean_ci(scores, P_)["ci95"])  # (the cap binds here)


def test_paper_protocol_sampled_last_batch_stops_at_the_last_image():
    """With N not a multiple of sampled_batch the last batch holds the N % sampled_batch images left: it
    was counted as a full batch (sizes [10, 10, 10] for 25 images), inflating n and the accuracy's denominator."""
    N = 25
    tm = torch.ones(2, 2, N, dtype=torch.bool)
    clean = torch.ones(2, N, dtype=torch.bool)
    r = E.paper_protocol(tm, clean, sampled_batch=10)
    for key in ("robust_sampled", "clean_sampled"):
        assert r[key]["batches"]["sizes"] == [10, 10, 5], key
        assert sum(r[key]["batches"]["sizes"]) == N
        assert r[key]["batches"]["correct"] == [10, 10, 5], key
        assert r[key]["acc"] == pytest.approx(1.0), key


def test_rpi_best_of_attacks_takes_the_lower_mean_per_image_not_the_min_per_precision():
    """The attacker picks one attack per image (the one with the lowest mean over inference precisions);
    it cannot pick a different attack for each precision: two attacks each fooling a different one of
    two precisions leave the image at 0.5, not 0."""
    a1 = torch.tensor([[True], [False]])   # [P=2, N=1]: right at the first precision only
    a2 = torch.tensor([[False], [True]])   # right at the second only
    r, scores = E.rpi_best_of_attacks([a1, a2], return_scores=True)
    assert r["acc"] == pytest.approx(0.5)
    assert scores.tolist() == [0.5]
    assert r["attacks"] == 2


class _ByPrecision(nn.Module):
    """Two-class logits that depend only on the precision: class 0 (right: the labels are 0) at 4 bits,
    class 1 at 8 bits; marked images (first pixel above 0.5) are class 1 at every precision."""

    def __init__(self):
        super().__init__()
        self.q = QLinear(1, 2, precisions=[4, 8])

    def forward(self, x):
        right = torch.tensor([1.0, -1.0]) if self.q.precision == (4, 4) else torch.tensor([-1.0, 1.0])
        marked = (x.flatten(1)[:, :1] > 0.5).float()
        return right * (1 - marked) + torch.tensor([-1.0, 1.0]) * marked + 0 * x.flatten(1)[:, :1]


def _data(n):
    return torch.full((n, 1, 2, 2), 0.25), torch.zeros(n, dtype=torch.long)


def test_autoattack_original_count_checks_the_clean_image_first(monkeypatch):
    """AutoAttack's original count holds an image only if a fresh forward classifies the clean image
    correctly before APGD-CE, and then each component's returned image: with attacks that change nothing
    and a model right at one of its two precisions, that is 3 independent draws, 1/8 of the images (1/4
    without the clean check)."""
    def unchanged(model, xb, yb, eps, **kw):
        return {"x_fooled": xb.clone(), "x_best": xb.clone(), "returned": xb.clone()}

    monkeypatch.setattr(P, "apgd_eot", unchanged)
    m = _ByPrecision()
    x, y = _data(400)
    r, c = E.autoattack_rpi(m, x, y, [4, 8], 0.1, seed=0, steps=1, eot_iter=1, return_correct=True)
    assert 0.07 < r["original"]["acc"] < 0.18, r["original"]   # 1/8; the count without the check: 1/4
    assert torch.allclose(c["expected"], torch.full((400,), 0.5))


def test_autoattack_expected_count_takes_the_lower_of_the_fooled_and_best_iterates(monkeypatch):
    """A component's score for an image is the lower of the expected accuracies at its last misclassified
    iterate and at its highest-loss iterate: with x_fooled wrong at every precision and x_best right, the
    image scores 0 (taking x_best alone gave it the clean score)."""
    def fooled_differs(model, xb, yb, eps, **kw):
        fooled = xb.clone()
        fooled.view(len(xb), -1)[:, 0] = 0.9  # marked: wrong at every precision
        return {"x_fooled": fooled, "x_best": xb.clone(), "returned": fooled}

    class _Right(_ByPrecision):
        def forward(self, x):  # right at both precisions unless marked
            marked = (x.flatten(1)[:, :1] > 0.5).float()
            return torch.tensor([1.0, -1.0]) * (1 - marked) + torch.tensor([-1.0, 1.0]) * marked

    monkeypatch.setattr(P, "apgd_eot", fooled_differs)
    x, y = _data(8)
    r, c = E.autoattack_rpi(_Right(), x, y, [4, 8], 0.1, seed=0, steps=1, eot_iter=1, return_correct=True)
    assert c["expected"].tolist() == [0.0] * 8
    assert r["expected"]["acc"] == 0.0
    assert not c["original"].any()
