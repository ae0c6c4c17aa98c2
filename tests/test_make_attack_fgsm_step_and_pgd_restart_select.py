"""dwq.eval.make_attack: FGSM's one step is epsilon (its definition, and dwq.attacks.fgsm's default),
whatever PGD's alpha the evaluation was also given; PGD gets the restart_select it is given."""
import pytest
import torch

from dwq import attacks as A
from dwq import eval as E


@pytest.mark.parametrize("kw", [{}, dict(alpha=0.02)])
def test_fgsm_built_by_make_attack_steps_by_epsilon(kw):
    x = torch.full((4, 1, 4, 4), 0.5)
    y = torch.tensor([0, 1, 0, 1])
    w = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    xa = E.make_attack("fgsm", epsilon=0.1, **kw)(lambda t: t.flatten(1) @ w, x, y)
    torch.testing.assert_close((xa - x).abs(), torch.full_like(x, 0.1))  # every pixel has a gradient


@pytest.mark.parametrize("select", ["loss", "misclassified"])
def test_pgd_built_by_make_attack_gets_its_restart_select(monkeypatch, select):
    calls = []
    monkeypatch.setattr(A, "pgd", lambda *a, **kw: calls.append(kw) or a[1])
    x, y = torch.full((2, 1, 4, 4), 0.5), torch.tensor([0, 1])
    E.make_attack("pgd", epsilon=0.1, restarts=2, restart_select=select)(lambda t: t.flatten(1)[:, :2], x, y)
    ((kw,),) = [calls]
    assert kw["restart_select"] == select and kw["restarts"] == 2
