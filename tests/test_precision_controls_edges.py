"""dwq.get_precision on layers left at different precisions, a first ``with`` after one layer changed, and
RandomPrecision's seeded stream for seed 0 (a non-negative seed is random.Random's own seed: the
sequences people have)."""
import random

import pytest
from torch import nn

import dwq
from dwq.nn import QConv2d, QLinear


def _net():
    return nn.Sequential(QConv2d(3, 4, 3, precisions=[4, 8, None]), nn.Flatten(),
                         QLinear(36, 2, precisions=[4, 8, None]))


def test_layers_at_two_different_precisions_have_no_model_precision():
    net = _net()
    dwq.set_precision(net, 8)
    net[2].precision = 4
    with pytest.raises(ValueError, match=r"the model's layers are at different precisions: \['4', '8'\]"):
        dwq.get_precision(net)
    net[2].precision = 8
    assert dwq.get_precision(net) == 8


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_a_non_negative_seed_draws_random_randoms_own_sequence(seed):
    rpi = dwq.RandomPrecision(_net(), bits=[4, 8, None], seed=seed)
    ref = random.Random(seed)
    assert [rpi.draw() for _ in range(20)] == [[4, 8, None][ref.randrange(3)] for _ in range(20)]


def test_a_first_entry_after_one_layer_changed_restores_what_it_found():
    """One layer moved between construction and the first ``with`` (not all of them): the block still
    restores what it found, that layer's precision included, not the state from before construction."""
    net = _net()
    dwq.set_precision(net, 8)
    ctx = dwq.precision(net, 4)
    net[0].precision = None
    with ctx:
        assert dwq.get_precision(net) == 4
    assert net[0].precision is None and net[2].precision == (4, 4)
