"""dwq.attacks: what PGD with steps=0 returns (its random start, or x without one) and the argument
checks at their edges: eps = 1 allowed; restarts=2 without a random start, and a start drawn ahead
given with random_start=False, refused."""
import pytest
import torch
from torch import nn

import dwq.attacks as A


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 4)).eval()


def _data(n=8):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 2, 2, generator=g) * 0.5 + 0.25, torch.arange(n) % 4


def test_pgd_with_zero_steps_returns_its_random_start():
    m = _model()
    x, y = _data()
    got = A.pgd(m, x, y, 0.1, 0.02, 0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, A.draw_random_start(x, 0.1, torch.Generator().manual_seed(3)))
    assert not torch.equal(got, x)
    assert torch.equal(A.pgd(m, x, y, 0.1, 0.02, 0, random_start=False), x)


def test_eps_of_one_is_allowed():
    m = _model()
    x, y = _data()
    assert A.check_eps(1.0) == 1.0
    xa = A.fgsm(m, x, y, 1.0)  # one signed step of 1 from the inside of [0, 1]: every pixel to 0 or 1
    assert bool(((xa == 0) | (xa == 1)).all())


def test_two_restarts_without_a_random_start_are_refused():
    m = _model()
    x, y = _data()
    with pytest.raises(ValueError, match=r"restarts=2 needs random_start=True"):
        A.pgd(m, x, y, 0.1, 0.02, 1, restarts=2, random_start=False)


def test_a_start_drawn_ahead_needs_random_start():
    m = _model()
    x, y = _data()
    start = A.draw_random_start(x, 0.1, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"start \(a random start drawn ahead\) needs random_start=True"):
        A.pgd(m, x, y, 0.1, 0.02, 1, random_start=False, start=start)
