"""cw_linf and bandits_td take images in another range [lo, hi] (normalized images): cw_linf's change of
variables maps that range, so its first iterate (delta = 0) is x itself, not x clipped to [0, 1] and
stretched; bandits_td projects each step onto the eps-ball inside [lo, hi], not inside [0, 1]."""
import torch
from torch import nn

import dwq.attacks as A

LO, HI = -1.0, 2.0


def _x():
    return torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * (HI - LO) + LO


def test_cw_linf_starts_at_the_images_themselves_in_another_range():
    x = _x()
    assert x.min() < 0 and x.max() > 1  # pixels on both sides of [0, 1]
    seen = []

    def model(z):
        seen.append(z.detach().clone())
        return z.flatten(1)[:, :4]

    out = A.cw_linf(model, x, torch.tensor([0, 1, 2]), steps=2, binary_steps=1, lo=LO, hi=HI)
    torch.testing.assert_close(seen[0], x, atol=1e-4, rtol=0)  # (tanh(atanh(0.999999 v)): a 1e-6 shrink)
    assert out.min() >= LO and out.max() <= HI


def test_bandits_steps_stay_within_eps_of_images_in_another_range():
    """A model that classifies every image correctly (class 0 by a margin of about 8): every image takes
    both steps of its budget, each projected onto the eps-ball around x, clipped to [lo, hi]."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(48, 4)).eval()
    with torch.no_grad():
        m[1].weight.mul_(0.01)
        m[1].bias.copy_(torch.tensor([8.0, 0.0, 0.0, 0.0]))
    x, y, eps = _x(), torch.zeros(3, dtype=torch.long), 8 / 255
    xa, q = A.bandits_td(m, x, y, eps, max_queries=4, image_lr=eps / 2, lo=LO, hi=HI,
                         generator=torch.Generator().manual_seed(0))
    assert torch.equal(q, torch.full((3,), 4, dtype=torch.long))  # never fooled: both steps taken
    assert (xa - x).abs().max() <= eps + 1e-6
    assert (xa - x).abs().max() > eps / 2  # it moved
    assert xa.min() >= LO and xa.max() <= HI
