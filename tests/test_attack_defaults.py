"""dwq.attacks defaults and input checks: fgsm_rs's default step (1.25 eps, Wong et al. 2020), its
random start projected into the eps-ball and the image range before the gradient is taken, and the
image-range check's upper bound. A tiny linear model on 2x2x3 images."""
import pytest
import torch
from torch import nn

import dwq.attacks as A

EPS = 0.1


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()


def _data(n=8, fill=None):
    x = torch.rand(n, 3, 2, 2) * 0.5 + 0.25 if fill is None else torch.full((n, 3, 2, 2), fill)
    return x, torch.arange(n) % 3


def test_fgsm_rs_default_step_is_one_and_a_quarter_eps():
    """fgsm_rs's default step is 1.25 eps (the "fast" adversarial training recipe), not FGSM's eps: from
    the same random start (same seeded generator) the default and an explicit 1.25 eps agree exactly,
    and differ from a step of eps."""
    m = _model()
    x, y = _data()

    def run(*alpha):
        return A.fgsm_rs(m, x, y, EPS, *alpha, generator=torch.Generator().manual_seed(5))

    default = run()
    assert torch.equal(default, run(1.25 * EPS))
    assert not torch.equal(default, run(EPS))
    assert (default - x).abs().max() <= EPS + 1e-6


class _Recording(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(12, 3)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.lin(x.flatten(1))


def test_fgsm_rs_takes_its_gradient_at_a_projected_random_start():
    """The random start is projected into [0, 1] and the eps-ball before the gradient: with images near 1
    and eps 0.5, the model was run on points up to 1.5 (outside the image range its inputs are defined on)."""
    torch.manual_seed(0)
    m = _Recording()
    x, y = _data(fill=0.9)
    out = A.fgsm_rs(m, x, y, 0.5, generator=torch.Generator().manual_seed(0))
    assert m.seen, "the model was never called"
    for seen in m.seen:
        assert seen.min() >= 0.0 and seen.max() <= 1.0
        assert (seen - x).abs().max() <= 0.5 + 1e-6
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("attack", [
    lambda m, x, y: A.fgsm(m, x, y, EPS),
    lambda m, x, y: A.fgsm_rs(m, x, y, EPS),
    lambda m, x, y: A.pgd(m, x, y, EPS, EPS / 4, 2),
], ids=["fgsm", "fgsm_rs", "pgd"])
@pytest.mark.parametrize("fill", [1.5, -0.5], ids=["above", "below"])
def test_images_outside_0_1_are_refused_on_both_sides(attack, fill):
    """The attacks clamp to [0, 1], so images outside it (normalized ones) would come back far outside the
    eps-ball: refused whether they lie below 0 or above 1 (only the lower bound was checked)."""
    m = _model()
    x, y = _data(fill=fill)
    with pytest.raises(ValueError, match=r"x must hold images in \[0, 1\]"):
        attack(m, x, y)
