"""dwq.attacks.cw_linf's schedules. The search on the constant c, per image: after a round in which
the image was fooled, c is halved (the midpoint of [0, c]); after one in which it was not, c is
multiplied by 10. Read off the gradient of the first step of each round: there delta = 0 and no pixel exceeds tau, so
that gradient is c times the same margin gradient, and the ratio between rounds is the ratio of c.
And tau's shrinking by 0.9 only while no pixel exceeds it, read off the gradient of each step."""
import torch

import dwq.attacks as A


class _RecordingAdam(torch.optim.Adam):
    grads = []

    def step(self, closure=None):
        _RecordingAdam.grads.append(self.param_groups[0]["params"][0].grad.detach().clone())
        return super().step(closure)


def _one_pixel_model(x):
    """Class 1 by 20·(p - 0.5) over the other three, p the first pixel."""
    p = x.flatten(1)[:, :1]
    return torch.cat([torch.zeros_like(p), 20 * (p - 0.5), torch.zeros_like(p), torch.zeros_like(p)], 1)


def recorded_cw_linf(monkeypatch, x, y, model=_one_pixel_model, **kw):
    """cw_linf on ``model``, recording each step: (its result, the images each step's forward saw,
    each step's gradient on delta)."""
    seen = []

    def recording(z):
        seen.append(z.detach().clone())
        return model(z)
    monkeypatch.setattr(torch.optim, "Adam", _RecordingAdam)
    _RecordingAdam.grads = []
    out = A.cw_linf(recording, x, y, **kw)
    return out, seen, _RecordingAdam.grads


def test_c_is_halved_after_a_success_and_multiplied_by_ten_after_a_failure(monkeypatch):
    x = torch.full((4, 3, 2, 2), 0.5)
    x[:, 0, 0, 0] = torch.tensor([0.55, 0.99, 0.52, 0.98])  # fooled at once / out of reach in 15 steps
    y = torch.ones(4, dtype=torch.long)
    steps = 15
    out, _, grads = recorded_cw_linf(monkeypatch, x, y, tau=0.05, c_init=1.0, steps=steps, binary_steps=3, lr=0.1)
    assert len(grads) == 3 * steps
    c = torch.stack([grads[r * steps].flatten(1).abs().sum(1) for r in range(3)])  # [round, image], up to a factor
    fooled = torch.tensor([True, False, True, False])
    assert torch.equal((out != x).flatten(1).any(1), fooled)
    torch.testing.assert_close(c[1] / c[0], torch.where(fooled, 0.5, 10.0))
    torch.testing.assert_close(c[2] / c[1], torch.where(fooled, 0.5, 10.0))


def test_tau_shrinks_by_a_tenth_only_while_no_pixel_exceeds_it(monkeypatch):
    """The docstring's rule, step by step on one image: tau starts at ``tau`` and is multiplied by 0.9 after
    every step at which no pixel lay beyond it. Whether a pixel was penalized at a step is read off that
    step's gradient: for the one pixel the model sees it is c·20·dadv/ddelta, less dadv/ddelta if penalized."""
    x = torch.full((1, 3, 2, 2), 0.5)
    x[0, 0, 0, 0] = 0.98  # out of reach: moves at every step, never fooled
    y = torch.ones(1, dtype=torch.long)
    _, seen, grads = recorded_cw_linf(monkeypatch, x, y, tau=0.05, c_init=1.0, steps=20, binary_steps=1, lr=0.1)
    assert len(seen) == len(grads) == 20
    tau, penalized, expected = 0.05, [], []
    for adv, g in zip(seen, grads):
        p = adv[0, 0, 0, 0].double()
        slope = (1 - (2 * p - 1) ** 2) / 2  # dadv/ddelta at this step
        penalized.append(bool(g[0, 0, 0, 0].double() / slope < 19.5))
        exceeds = bool((adv - x).abs().max() > tau)
        expected.append(exceeds)
        if not exceeds:
            tau *= 0.9
    assert penalized == expected
    assert any(penalized) and not all(penalized)  # both kinds of step happened
