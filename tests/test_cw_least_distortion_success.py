"""dwq.attacks.cw_linf and cw_l2 return, per image, the successful iterate of the *least* distortion
(L∞ for cw_linf, L2 for cw_l2) among all they tried, else the clean image; and cw_linf's kappa asks for
a margin beyond kappa (a model whose true class leads by less than kappa is still attacked). Checked
against every iterate the model was run on."""
import torch
from torch import nn

import dwq.attacks as A
from dwq.attacks.core import logit_margin


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 4)).eval()


def _data(m, n=8):
    x = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    with torch.no_grad():
        return x, m(x).argmax(1)


class _Recording:
    def __init__(self, m):
        self.m, self.seen = m, []

    def __call__(self, z):
        self.seen.append(z.detach().clone())
        return self.m(z)


def _least_distortion_success(m, seen, x, y, dist):
    best, best_d = x.clone(), torch.full((len(x),), float("inf"))
    with torch.no_grad():
        for adv in seen:
            d = dist(adv - x)
            better = (logit_margin(m(adv), y) < 0) & (d < best_d)
            best[better], best_d[better] = adv[better], d[better]
    return best, best_d


def test_cw_linf_keeps_the_least_linf_success():
    m = _model()
    x, y = _data(m)
    rec = _Recording(m)
    got = A.cw_linf(rec, x, y, tau=0.1, c_init=1.0, steps=40, binary_steps=2, lr=0.05)
    expected, d = _least_distortion_success(m, rec.seen, x, y, lambda v: v.abs().flatten(1).amax(1))
    assert torch.isfinite(d).sum() >= 4  # most images fooled
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_cw_l2_keeps_the_least_l2_success():
    m = _model()
    x, y = _data(m)
    rec = _Recording(m)
    got = A.cw_l2(rec, x, y, c=5.0, steps=40, lr=0.05)
    expected, d = _least_distortion_success(m, rec.seen, x, y, lambda v: v.flatten(1).pow(2).sum(1))
    assert torch.isfinite(d).sum() >= 4
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_cw_linf_attacks_an_image_whose_true_class_leads_by_less_than_kappa():
    m = _model()
    x, y = _data(m)
    with torch.no_grad():
        margin = logit_margin(m(x), y)
    kappa = 1.0
    assert bool((margin < kappa).any())
    got = A.cw_linf(m, x, y, tau=0.1, c_init=1.0, steps=40, binary_steps=2, lr=0.05, kappa=kappa)
    moved = (got != x).flatten(1).any(1)
    with torch.no_grad():
        after = logit_margin(m(got), y)
    assert bool((moved & (margin < kappa)).any())
    assert bool((after[moved] < -kappa).all())
