"""fgsm_rs and PGD's random start, against their definitions: the random start is uniform over the
whole eps-ball (not a smaller one), and fgsm_rs takes its gradient *at* the random start and steps from
there (x0 + alpha * sign(grad at x0), projected). The start is reproduced from the same seeded generator
with draw_random_start, which draws exactly as fgsm_rs and pgd do."""
import torch

import dwq.attacks as A


def test_the_random_start_fills_the_whole_eps_ball():
    x = torch.full((64, 1, 8, 8), 0.5)
    eps = 0.2
    d = A.draw_random_start(x, eps, torch.Generator().manual_seed(0)) - x
    assert d.abs().max() <= eps + 1e-6
    # 4096 uniform draws in [-eps, eps]: both faces are approached, and about half lie beyond eps/2
    assert d.max() > 0.98 * eps and d.min() < -0.98 * eps
    far = (d.abs() > eps / 2).float().mean().item()
    assert 0.45 < far < 0.55
    # pgd with no steps returns that start, from the same generator
    got = A.pgd(lambda t: t.flatten(1)[:, :2], x, torch.zeros(64, dtype=torch.long), eps, 0.05, 0,
                generator=torch.Generator().manual_seed(0))
    assert torch.equal(got - x, d)


def _bowl(x):
    """Label 0; the wrong class's logit is (p - 0.5)^2 per pixel p summed: CE rises as a pixel moves
    away from 0.5, so its gradient has the sign of p - 0.5 and is exactly 0 at p = 0.5."""
    s = ((x - 0.5) ** 2).flatten(1).sum(1)
    return torch.stack([torch.zeros_like(s), s], 1)


def test_fgsm_rs_steps_along_the_gradient_at_its_random_start():
    x, y = torch.full((16, 1, 2, 2), 0.5), torch.zeros(16, dtype=torch.long)
    eps, alpha = 0.25, 0.1
    x0 = A.draw_random_start(x, eps, torch.Generator().manual_seed(3))
    assert (x0 != x).all()
    out = A.fgsm_rs(_bowl, x, y, eps, alpha, generator=torch.Generator().manual_seed(3))
    # at x itself the gradient is 0 (a step from there would not move); at x0 it points away from 0.5
    expected = A.project_linf(x0 + alpha * (x0 - x).sign(), x, eps)
    assert torch.equal(out, expected)
    assert ((out - x).abs() > (x0 - x).abs()).any()  # moved outward from the start, not left at it
    assert (out - x).abs().max() <= eps + 1e-6 and out.min() >= 0 and out.max() <= 1
