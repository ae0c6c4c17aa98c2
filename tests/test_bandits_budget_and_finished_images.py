"""dwq.attacks.bandits_td: an image misclassified from the start spends no queries and comes back
unchanged, a robust one spends exactly its budget (2 per step, never more than max_queries, odd or
even), and the default image step is eps/4."""
import torch
from torch import nn

import dwq.attacks as A


def _confident_model():
    """Class 0 by a margin of about 8 whatever the (4x4, 3-channel) image: robust at these eps, with a
    loss still above float32 rounding (at a margin of 50 no query changed it)."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(48, 4)).eval()
    with torch.no_grad():
        m[1].bias.copy_(torch.tensor([8.0, 0.0, 0.0, 0.0]))
    return m


def _x(n=6):
    return torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25


def test_an_image_misclassified_from_the_start_uses_no_queries_and_is_unchanged():
    m = _confident_model()
    x = _x()
    y = torch.tensor([0, 1, 0, 2, 0, 3])  # the model says 0: the odd ones are misclassified already
    xa, q = A.bandits_td(m, x, y, 0.1, max_queries=10, generator=torch.Generator().manual_seed(0))
    fooled = y != 0
    assert torch.equal(q[fooled], torch.zeros(3, dtype=torch.long))
    assert torch.equal(xa[fooled], x[fooled])
    assert torch.equal(q[~fooled], torch.full((3,), 10, dtype=torch.long))  # never fooled: the whole budget
    assert bool(((xa[~fooled] - x[~fooled]).abs().flatten(1).amax(1) > 0).all())


def test_queries_never_exceed_the_budget():
    m = _confident_model()
    x, y = _x(), torch.zeros(6, dtype=torch.long)
    calls = []

    def counted(z):
        calls.append(len(z))
        return m(z)
    for budget in (2, 5):
        calls.clear()
        _, q = A.bandits_td(counted, x, y, 0.1, max_queries=budget, generator=torch.Generator().manual_seed(0))
        steps = budget // 2
        assert torch.equal(q, torch.full((6,), 2 * steps, dtype=torch.long))
        assert len(calls) == 1 + 3 * steps  # the first check, then two queries and a check per step


def test_default_image_step_is_a_quarter_of_eps():
    m = _confident_model()
    x, y = _x(), torch.zeros(6, dtype=torch.long)

    def run(**kw):
        return A.bandits_td(m, x, y, 0.2, max_queries=2, generator=torch.Generator().manual_seed(0), **kw)[0]
    default = run()
    assert torch.equal(default, run(image_lr=0.05))
    assert not torch.equal(default, run(image_lr=0.1))
    moved = (default - x).abs()
    assert torch.allclose(moved[moved > 0], torch.full_like(moved[moved > 0], 0.05), atol=1e-6)


def _one_pixel_model(x):
    """Class 1 by 20·(p - 0.5) over the other three, p the first pixel."""
    p = x.flatten(1)[:, :1]
    return torch.cat([torch.zeros_like(p), 20 * (p - 0.5), torch.zeros_like(p), torch.zeros_like(p)], 1)


def test_an_image_fooled_during_the_attack_stops_where_it_was_fooled():
    """Images fooled at the first step (p just above 0.5, one step of eps/4 down) are returned as that
    first step left them, while the robust ones (p = 0.9) keep the attack going for the whole budget."""
    x = torch.full((4, 3, 4, 4), 0.5)
    x[:, 0, 0, 0] = torch.tensor([0.51, 0.9, 0.52, 0.95])
    y = torch.ones(4, dtype=torch.long)

    def run(budget):
        return A.bandits_td(_one_pixel_model, x, y, 0.1, max_queries=budget,
                            generator=torch.Generator().manual_seed(0))
    one_step, _ = run(2)
    xa, q = run(20)
    assert q.tolist() == [2, 20, 2, 20]
    assert torch.equal(xa[[0, 2]], one_step[[0, 2]])
    assert bool((_one_pixel_model(xa[[0, 2]]).argmax(1) != 1).all())
    assert bool(((xa[[0, 2]] - x[[0, 2]]).abs().flatten(1).amax(1) > 0).all())
