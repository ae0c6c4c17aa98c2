"""dwq.eval.make_attack: the settings it is given reach the attack it builds (checked on the attack calls
themselves, replaced by recorders, so that no slow attack runs)."""
import pytest
import torch

from dwq import attacks as A
from dwq import eval as E


def _record(monkeypatch, name, result):
    calls = []

    def fake(*args, **kw):
        calls.append((args, kw))
        return result(*args)

    monkeypatch.setattr(A, name, fake)
    return calls


def _data():
    return torch.full((3, 1, 4, 4), 0.5), torch.tensor([0, 1, 2])


def test_cw_linf_runs_the_references_settings_and_is_projected_into_the_ball(monkeypatch):
    # c = 0.1 and one binary-search step (the reference's test_strong.py); the result is clipped to the ε-ball
    calls = _record(monkeypatch, "cw_linf", lambda f, x, y: x + 0.3)
    x, y = _data()
    xa = E.make_attack("cw-linf", epsilon=0.1, cw_tau=0.2, cw_steps=7)(lambda t: t, x, y)
    ((_, kw),) = calls
    assert kw == dict(tau=0.2, c_init=0.1, binary_steps=1, steps=7)
    assert torch.allclose(xa, x + 0.1)  # 0.3 away, projected back to ε


def test_bandits_draws_from_the_generator_it_is_given(monkeypatch):
    calls = _record(monkeypatch, "bandits_td", lambda f, x, y, eps: (x, None))
    g = torch.Generator()
    x, y = _data()
    E.make_attack("bandits", epsilon=0.1, bandits_queries=6, bandits_tile=2, generator=g)(lambda t: t, x, y)
    ((_, kw),) = calls
    assert kw["generator"] is g and kw["max_queries"] == 6 and kw["tile_size"] == 2


def test_autoattack_is_seeded_by_the_seed_it_is_given(monkeypatch):
    calls = _record(monkeypatch, "autoattack", lambda f, x, y, eps, version: x)
    x, y = _data()
    E.make_attack("autoattack", epsilon=0.1, seed=7, num_classes=3)(lambda t: t, x, y)
    ((args, kw),) = calls
    assert kw == dict(n_classes=3, seed=7) and args[3:] == (0.1, "standard")


@pytest.mark.parametrize("name", ["fgsm", "cw-l2", "cw-linf", "bandits", "autoattack"])
@pytest.mark.parametrize("kw", [dict(early_stop=True), dict(restart_select="loss")])
def test_pgd_options_are_refused_for_other_attacks(name, kw):
    # silently dropped they would read as a reference-PGD evaluation that never ran
    with pytest.raises(ValueError, match=f"early_stop and restart_select are options of the pgd attack, not of '{name}'"):
        E.make_attack(name, epsilon=0.1, **kw)
