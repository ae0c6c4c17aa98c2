"""dwq.attacks.autoattack hands its settings to every component it builds (torchattacks 3.5.1): eps,
seed and steps to each, eot_iter to rand's APGDs, square_queries to Square; read off the components
MultiAttack is given (its forward recorded, so no attack runs)."""
import pytest
import torch
from torch import nn

import dwq.attacks as A


@pytest.mark.parametrize("version", ["standard", "rand"])
def test_eps_seed_steps_and_queries_reach_every_component(monkeypatch, version):
    import torchattacks

    seen = []

    def record(self, images, labels):
        seen.extend(self.attacks)
        return images
    monkeypatch.setattr(torchattacks.MultiAttack, "forward", record)
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(48, 5)).eval()
    x = torch.rand(4, 3, 4, 4)
    y = m(x).argmax(1)
    A.autoattack(m, x, y, 0.07, version=version, seed=7, steps=3, eot_iter=2, square_queries=11)
    names = [type(a).__name__ for a in seen]
    assert names == (["APGD", "APGDT", "FAB", "Square"] if version == "standard" else ["APGD", "APGD"])
    for a in seen:
        assert (a.eps, a.seed, a.n_restarts) == (0.07, 7, 1), type(a).__name__
        if hasattr(a, "steps"):
            assert a.steps == 3, type(a).__name__
    if version == "rand":
        assert [a.eot_iter for a in seen] == [2, 2] and [a.loss for a in seen] == ["ce", "dlr"]
    else:
        assert seen[3].n_queries == 11
