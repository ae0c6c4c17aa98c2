"""dwq.eval.make_attack (found by mutation): the positional settings each attack receives (PGD's ε, step size
and step count in that order, Bandits' ε), the defaults its docstring gives (PGD-20 at 2/255 with one restart
and no early stop, Bandits' 1000 queries in tiles of 4, AutoAttack's seed 0 with the class count read from the
model), the reference PGD's two options, and the settings refused when the attack is built, not at its first
call (an unknown restart_select, an ε out of [0, 1] for every attack, CW-L∞'s steps as CW-L2's, an unknown
name). Recorders stand in for the attacks (test_make_attack_binds_its_settings), so that no slow attack runs."""
import pytest
import torch
from test_make_attack_binds_its_settings import _data, _record

from dwq import eval as E
from dwq.eval.attacks import EVAL_ATTACKS, REFERENCE_PGD


def test_pgd_gets_epsilon_step_size_and_steps_in_that_order(monkeypatch):
    """Each of PGD's three positional settings is the one given (none swapped, none off by one)."""
    calls = _record(monkeypatch, "pgd", lambda f, x, y, eps, alpha, steps: x)
    g = torch.Generator()
    x, y = _data()
    E.make_attack("pgd", epsilon=0.1, alpha=0.02, steps=7, restarts=3, early_stop=True, restart_select="loss",
                  generator=g)(lambda t: t, x, y)
    ((args, kw),) = calls
    assert args[3:] == (0.1, 0.02, 7), f"pgd got (epsilon, alpha, steps) {args[3:]}, not (0.1, 0.02, 7)"
    assert kw == dict(restarts=3, early_stop=True, restart_select="loss", generator=g), kw


@pytest.mark.parametrize("name, fake, result, want_args, want_kw", [
    ("pgd", "pgd", lambda f, x, y, eps, alpha, steps: x, (0.1, 2 / 255, 20),
     dict(restarts=1, early_stop=False, restart_select="misclassified", generator=None)),
    ("bandits", "bandits_td", lambda f, x, y, eps: (x, None), (0.1,),
     dict(max_queries=1000, tile_size=4, generator=None)),
    ("autoattack", "autoattack", lambda f, x, y, eps, version: x, (0.1, "standard"), dict(n_classes=None, seed=0)),
    ("cw-l2", "cw_l2", lambda f, x, y: x, (), dict(steps=100)),
])
def test_the_documented_defaults_reach_the_attack(monkeypatch, name, fake, result, want_args, want_kw):
    """Given only ε, each attack runs with make_attack's documented defaults (PGD-20, step 2/255, one restart,
    the stronger dwq PGD without early stop; Bandits' 1000 queries, tile 4; AutoAttack seed 0, classes read
    from the model; CW's 100 steps), and with ε itself where it takes one."""
    calls = _record(monkeypatch, fake, result)
    x, y = _data()
    E.make_attack(name, epsilon=0.1)(lambda t: t, x, y)
    ((args, kw),) = calls
    assert args[3:] == want_args, f"{name} got positional settings {args[3:]}, want {want_args}"
    assert kw == want_kw, f"{name} got keyword settings {kw}, want {want_kw}"


def test_reference_pgd_is_the_references_early_stop_and_loss_selection(monkeypatch):
    """REFERENCE_PGD is CIFAR/utils.py's attack_pgd: a sample stops once misclassified, and of several
    restarts the larger final loss wins; both reach pgd."""
    assert REFERENCE_PGD == {"early_stop": True, "restart_select": "loss"}, f"REFERENCE_PGD is {REFERENCE_PGD}"
    calls = _record(monkeypatch, "pgd", lambda f, x, y, eps, alpha, steps: x)
    x, y = _data()
    E.make_attack("pgd", epsilon=0.1, restarts=2, **REFERENCE_PGD)(lambda t: t, x, y)
    ((_, kw),) = calls
    assert kw["early_stop"] is True and kw["restart_select"] == "loss", kw


@pytest.mark.parametrize("name", EVAL_ATTACKS)
@pytest.mark.parametrize("epsilon", [-0.1, 1.5])
def test_an_epsilon_out_of_range_is_refused_when_the_attack_is_built(name, epsilon):
    """ε outside [0, 1] is refused by make_attack itself for every attack (an evaluation builds its attack
    before the clean pass), not at the first call."""
    with pytest.raises(ValueError, match=rf"epsilon must be in \[0, 1\].*got {epsilon}"):
        E.make_attack(name, epsilon=epsilon)


@pytest.mark.parametrize("name, kw, msg", [
    ("pgd", dict(restart_select="best"), r"restart_select must be one of \('misclassified', 'loss'\), got 'best'"),
    ("cw-l2", dict(cw_steps=0), r"cw_steps must be an int >= 1, got 0"),
    ("cw-linf", dict(cw_steps=0), r"cw_steps must be an int >= 1, got 0"),
    ("bim", {}, r"unknown attack 'bim'; choose one of \('pgd', 'fgsm', 'cw-l2', 'cw-linf', 'bandits', 'autoattack'\)"),
])
def test_settings_refused_when_the_attack_is_built(name, kw, msg):
    """A bad restart_select, either CW attack's steps below 1 and an unknown name are ValueErrors of make_attack
    itself, not of the first call (or a None attack)."""
    with pytest.raises(ValueError, match=msg):
        E.make_attack(name, epsilon=0.1, **kw)
