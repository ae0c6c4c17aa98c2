"""dwq.attacks.bandits_td against its definition, two points the other Bandits tests leave open:

* an image is finished once one check misclassifies it, also for a randomized model (RPI's random
  precision) whose later forwards would classify it correctly again: it is not attacked further and
  spends no more queries;
* the exploration noise is exploration·N(0, I)/sqrt(dim) (norm about ``exploration``, the original
  L∞ configuration's scale, against a prior whose cells lie in [-1, 1]): three steps are compared with
  the update written out from Ilyas et al.'s algorithm, drawing the noise from the same generator."""
import math

import torch
import torch.nn.functional as F

import dwq.attacks as A


def test_an_image_fooled_once_stays_finished_on_a_randomized_model():
    x = torch.full((2, 1, 4, 4), 0.5)
    y = torch.zeros(2, dtype=torch.long)
    calls = []

    def flaky(z):
        # class 0 at every forward, except that the first step's check (the 4th call) says 1 for image 0;
        # image 1 is never fooled, so the attack goes on for the whole budget
        calls.append(z.detach().clone())
        out = torch.stack([torch.full((len(z),), 1.0) + z.flatten(1).sum(1) * 1e-3, torch.zeros(len(z))], 1)
        if len(calls) == 4:
            out[0] = out[0].flip(0)
        return out
    xa, q = A.bandits_td(flaky, x, y, 0.1, max_queries=10, generator=torch.Generator().manual_seed(0))
    assert q.tolist() == [2, 10]  # image 0: one step, then finished, though later forwards call it correct
    assert len(calls) == 1 + 3 * 5
    assert torch.equal(xa[0], calls[3][0])  # returned as the check that fooled it saw it
    assert not torch.equal(xa[1], calls[3][1])  # image 1 moved on


def _reference(model, x, y, eps, steps, g, fd_eta=0.1, online_lr=100.0, exploration=1.0, tile=2):
    n, ch, h, w = x.shape
    prior = torch.zeros(n, ch, math.ceil(h / tile), math.ceil(w / tile))
    dim = prior[0].numel()
    up = lambda p: F.interpolate(p, size=(h, w), mode="nearest")  # noqa: E731
    x_adv = x.clone()
    for _ in range(steps):
        u = exploration * torch.randn(prior.shape, generator=g) / math.sqrt(dim)
        q1, q2 = up(prior + u), up(prior - u)
        q1 = q1 / q1.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        q2 = q2 / q2.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        l1 = F.cross_entropy(model(x_adv + fd_eta * q1), y, reduction="none")
        l2 = F.cross_entropy(model(x_adv + fd_eta * q2), y, reduction="none")
        est = ((l1 - l2) / (fd_eta * exploration)).view(-1, 1, 1, 1) * u
        prior = torch.tanh(online_lr * est + torch.atanh(prior))
        x_adv = torch.min(torch.max(x_adv + eps / 4 * up(prior).sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv


def test_three_steps_follow_the_algorithm_with_the_noise_scaled_by_one_over_sqrt_dim():
    torch.manual_seed(0)
    w = torch.randn(48, 4) * 0.05
    b = torch.tensor([4.0, 0.0, 0.0, 0.0])  # robust: every image takes all three steps
    model = lambda z: z.flatten(1) @ w + b  # noqa: E731
    x = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    y = torch.zeros(3, dtype=torch.long)
    with torch.no_grad():
        want = _reference(model, x, y, 0.1, 3, torch.Generator().manual_seed(0))
        got, q = A.bandits_td(model, x, y, 0.1, max_queries=6, tile_size=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(q, torch.full((3,), 6, dtype=torch.long))
    assert not torch.equal(got, x)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
