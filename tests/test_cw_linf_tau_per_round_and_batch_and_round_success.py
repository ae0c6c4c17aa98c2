"""dwq.attacks.cw_linf's tau and c schedules beyond test_cw_linf_c_search_and_tau_schedule.py: tau starts
again at ``tau`` in every binary-search round (the reference resets it with each new c) and within a
round is multiplied by 0.9 only after a step at which no pixel *of any image* lay beyond it (one tau for
the batch); and a round counts as a success for an image fooled at any of its steps, not only the last.
Whether a pixel was penalized at a step is read off that step's gradient: the one pixel the model sees
gets c·20·dadv/ddelta from the margin (0 once fooled), less dadv/ddelta where penalized (c is read off
each round's first step, where delta = 0 and no pixel is penalized)."""
import torch
from test_cw_linf_c_search_and_tau_schedule import _one_pixel_model, recorded_cw_linf


def test_tau_is_reset_at_the_start_of_each_binary_search_round(monkeypatch):
    x = torch.full((1, 3, 2, 2), 0.5)
    x[0, 0, 0, 0] = 0.98  # moves at every step, fooled only at the first round's last step
    y = torch.ones(1, dtype=torch.long)
    steps = 20
    _, seen, grads = recorded_cw_linf(monkeypatch, x, y, tau=0.05, c_init=1.0, steps=steps, binary_steps=2, lr=0.1)
    assert len(seen) == len(grads) == 2 * steps
    penalized, expected = [], []
    for i, (adv, g) in enumerate(zip(seen, grads)):
        p = adv[0, 0, 0, 0].double()
        slope = (1 - (2 * p - 1) ** 2) / 2
        if i % steps == 0:
            tau = 0.05  # a new round: tau starts again
            c = g[0, 0, 0, 0].double() / slope / 20
        penalized.append(bool(g[0, 0, 0, 0].double() / slope < 20 * c - 0.5))
        exceeds = bool((adv - x).abs().max() > tau)
        expected.append(exceeds)
        if not exceeds:
            tau *= 0.9
    assert penalized == expected
    second = penalized[steps:]
    assert any(second) and not all(second)  # both kinds of step in the second round


def test_an_image_fooled_at_any_step_of_a_round_counts_as_a_success(monkeypatch):
    """c is halved after a round in which the image was fooled at *some* step, not only at the last: a
    randomized model (here one that misclassifies at the round's 2nd forward only) fools it once."""
    x = torch.full((1, 3, 2, 2), 0.5)
    x[0, 0, 0, 0] = 0.98
    y = torch.ones(1, dtype=torch.long)
    calls = []

    def flaky(z):
        calls.append(1)
        out = _one_pixel_model(z)
        return -out if len(calls) == 2 else out  # margin negative at that one forward: fooled
    steps = 5
    out, _, grads = recorded_cw_linf(monkeypatch, x, y, model=flaky, tau=0.05, c_init=1.0, steps=steps,
                                     binary_steps=2, lr=0.1)
    assert len(grads) == 2 * steps
    c0, c1 = (grads[r * steps].flatten(1).abs().sum(1) for r in range(2))  # delta = 0: c · the same margin gradient
    torch.testing.assert_close(c1 / c0, torch.tensor([0.5]))
    assert not torch.equal(out, x)  # that success is returned


def test_tau_is_shared_and_stays_put_while_any_image_exceeds_it(monkeypatch):
    """One tau for the batch: while image 0 (out of reach, always moving) lies beyond tau, tau stays where
    it was, so image 1 (fooled after a short move, then only pulled back by its penalty) is penalized
    exactly at the steps at which it lies beyond that tau. Each image's penalty is read off its gradient."""
    x = torch.full((2, 3, 2, 2), 0.5)
    x[:, 0, 0, 0] = torch.tensor([0.98, 0.53])
    y = torch.ones(2, dtype=torch.long)
    _, seen, grads = recorded_cw_linf(monkeypatch, x, y, tau=0.05, c_init=1.0, steps=30, binary_steps=1, lr=0.02)
    tau, got, want = 0.05, [], []
    for adv, g in zip(seen, grads):
        dist = (adv - x).abs().flatten(1).amax(1)
        p = adv[:, 0, 0, 0].double()
        slope = (1 - (2 * p - 1) ** 2) / 2
        fooled = p < 0.5
        ratio = g[:, 0, 0, 0].double() / slope  # 20 (margin), 19 (margin and penalty), -1 (penalty), 0 (none)
        got.append([bool(r < 19.5) if not f else bool(r < -0.5) for r, f in zip(ratio, fooled)])
        want.append([bool(d > tau) for d in dist])
        if not bool((dist > tau).any()):
            tau *= 0.9
    assert got == want
    assert any(w[1] for w in want) and not all(w[1] for w in want)
