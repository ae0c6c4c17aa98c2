"""dwq.train.config beyond test_train.py and test_train_config_refusals.py: TrainConfig's documented
defaults (the paper's recipe, which dwq train's flags mirror), the refusals of a bad reference-semantics
field, switch, number, schedule, count or milestone with their messages, and the cyclic schedule at its
boundaries (a one-step run's peak, past the run's end)."""
import re

import pytest

from dwq.train import TrainConfig
from dwq.train.config import SCHEDULES, ZERO_GRAD, lr_lambda
from test_train import cfg


def test_defaults_are_the_documented_recipe():
    """Every field a caller may leave out: PGD-7 at 8/255, 10 epochs of batch 128, SGD lr 0.1 momentum 0.9
    wd 5e-4, multistep at 50% / 75% of the run by 0.1, PGD-10 validation every epoch, the reference's PGD-20
    test-set rule; the reference-dependent fields resolve on validate()."""
    c = TrainConfig()
    got = {k: getattr(c, k) for k in (
        "attack", "epsilon", "alpha", "attack_iters", "free_replays", "epochs", "batch_size", "lr", "momentum",
        "weight_decay", "lr_schedule", "lr_milestones", "lr_gamma", "precisions", "random_precision", "seed", "amp",
        "compile", "deterministic", "cuda_graphs", "val_every", "val_pgd_steps", "progress", "extra", "reference",
        "zero_grad", "test_select", "test_select_steps")}
    want = dict(attack="pgd", epsilon=8 / 255, alpha=None, attack_iters=7, free_replays=4, epochs=10, batch_size=128,
                lr=0.1, momentum=0.9, weight_decay=5e-4, lr_schedule="multistep", lr_milestones=(0.5, 0.75),
                lr_gamma=0.1, precisions=None, random_precision=True, seed=0, amp=False, compile=False,
                deterministic=False, cuda_graphs=False, val_every=1, val_pgd_steps=10, progress=True, extra={},
                reference=False, zero_grad=None, test_select=None, test_select_steps=20)
    assert got == want, {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    assert TrainConfig().extra is not c.extra, "each config must get its own extra dict"


@pytest.mark.parametrize("kw, message", [
    (dict(zero_grad="sometimes"), f"zero_grad must be one of {ZERO_GRAD}, got 'sometimes'"),
    (dict(test_select=1), "test_select must be True or False, got 1"),
    (dict(progress="yes"), "progress must be True or False, got 'yes'"),
    (dict(cuda_graphs=0), "cuda_graphs must be True or False, got 0"),
    (dict(lr_gamma="0.1"), "lr_gamma must be a number, got '0.1'"),
    (dict(weight_decay=True), "weight_decay must be a number, got True"),
    (dict(lr_schedule="linear"), f"unknown lr schedule 'linear'; choose one of {SCHEDULES}"),
    (dict(test_select_steps=0), "test_select_steps must be >= 1 (an int), got 0"),
    (dict(attack_iters=0), "attack_iters must be >= 1 (an int), got 0"),
    (dict(lr_schedule="multistep", lr_milestones=(0, 0.5)),
     "lr milestones are fractions of the run in (0, 1), got [0, 0.5]"),
    (dict(weight_decay=float("inf")), "need finite lr > 0, weight_decay >= 0"),
    (dict(lr_gamma=float("nan")), "need finite lr > 0, weight_decay >= 0"),
])
def test_bad_field_is_refused_with_its_message(kw, message):
    """Each of these once validated (or failed later with another error): a ValueError naming the field."""
    with pytest.raises(ValueError, match=re.escape(message)):
        cfg(**kw).validate()


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_validates_and_starts_where_documented(schedule):
    """constant and multistep train their first step at the full lr; cyclic starts its rise from 0."""
    f = lr_lambda(cfg(lr_schedule=schedule).validate(), 10)
    assert f(0) == (0.0 if schedule == "cyclic" else 1.0), (schedule, f(0))


def test_cyclic_one_step_run_peaks_at_its_step_and_the_schedule_never_goes_negative():
    """half clamps to 1 for a one-step run: 0 at step 0, the peak lr (factor 1) at step 1; past the run's
    end (a scheduler stepped once more) the factor stays 0, not a negative learning rate."""
    c = cfg(lr_schedule="cyclic")
    one = lr_lambda(c, 1)
    assert (one(0), one(1)) == (0.0, 1.0), (one(0), one(1))
    f = lr_lambda(c, 100)
    assert [f(s) for s in (50, 99, 100, 101, 150)] == [1.0, 0.02, 0.0, 0.0, 0.0]
    assert lr_lambda(c, 1)(2) == 0.0
