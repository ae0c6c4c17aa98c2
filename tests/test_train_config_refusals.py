"""TrainConfig.validate's refusals and defaults not covered by test_train.py::test_bad_config_is_rejected,
the LR schedule at odd and one-step lengths, and a resume refusing a changed learning rate."""
import re

import pytest

from dwq.models import small_cnn
from dwq.train import CheckpointError, TrainConfig, Trainer
from dwq.train.loop import lr_lambda
from test_train import SET, cfg, tiny_data


@pytest.mark.parametrize("kw,message", [
    # several precisions without RPT: training would use the first only while validation averages all
    (dict(precisions=[2, 4], random_precision=False), "without random precision training give exactly one"),
    (dict(momentum=1.0), "0 <= momentum < 1"),
    (dict(momentum=-0.1), "0 <= momentum < 1"),
    (dict(weight_decay=-1e-4), "weight_decay >= 0"),
    (dict(lr_gamma=0.0), "lr_gamma > 0"),
    (dict(lr=0.0), "need finite lr > 0"),
    (dict(epochs=0), "epochs must be >= 1 (an int), got 0"),
    (dict(free_replays=0, attack="free"), "free_replays must be >= 1 (an int), got 0"),
    (dict(seed=2**63), "seed must be an int in 0..2^63 - 1"),
])
def test_more_bad_configs_are_rejected(kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cfg(**kw).validate()


def test_one_fixed_precision_and_the_largest_seed_are_accepted():
    assert cfg(precisions=[4], random_precision=False).validate().precisions == [4]
    assert cfg(seed=2**63 - 1, momentum=0.0, weight_decay=0.0).validate().seed == 2**63 - 1


def test_reference_resolves_to_zeroed_gradients_and_the_test_set_rule():
    ref = TrainConfig(reference=True).validate()
    assert ref.zero_grad == "zero" and ref.test_select is True
    own = TrainConfig().validate()
    assert own.zero_grad == "none" and own.test_select is False


def test_cyclic_schedule_peaks_at_half_of_an_odd_or_one_step_run():
    c = cfg(lr_schedule="cyclic")
    f = lr_lambda(c, 101)  # half = 50.5: rising to 1 there, 0 at the end
    assert f(50) == pytest.approx(50 / 50.5) and f(51) == pytest.approx(50 / 50.5) and f(101) == 0
    assert lr_lambda(c, 1)(0) == 0  # half clamps to 1: the run's one step starts the rise


def test_resume_refuses_another_learning_rate(tmp_path):
    Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=1), str(tmp_path)).fit()
    other = Trainer(small_cnn(precisions=SET, width=8), tiny_data(64), cfg(epochs=2, lr=0.1), str(tmp_path))
    with pytest.raises(CheckpointError, match=r"another config: lr 0.05 there, 0.1 here"):
        other.resume()
