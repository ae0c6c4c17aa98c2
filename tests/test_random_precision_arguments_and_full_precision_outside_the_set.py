"""dwq.nn.control's refusals: RandomPrecision refuses a seed and a generator together (one of them would be
ignored silently), and set_precision refuses full precision on a model whose set has none, at the model and
at one layer, leaving every layer where it was; layers whose sets differ only after their first entry have
no model precision set."""
import pytest
import torch
from torch import nn

import dwq
from dwq.nn import QConv2d, QLinear, RandomPrecision


def _net(precisions=(4, 8)):
    return nn.Sequential(QConv2d(3, 4, 3, precisions=precisions), nn.Flatten(),
                         QLinear(36, 2, precisions=precisions))


@pytest.mark.parametrize("seed", [0, 3])
def test_a_seed_and_a_generator_together_are_refused(seed):
    with pytest.raises(ValueError, match="RandomPrecision: give seed or generator, not both"):
        RandomPrecision(_net(), seed=seed, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fp", [None, "fp"])
def test_full_precision_outside_the_set_is_refused_and_nothing_moves(fp):
    """[4, 8] has no full precision: set_precision(model, None) must fail like any precision outside the set."""
    net = _net()
    dwq.set_precision(net, 4)
    with pytest.raises(ValueError, match=r"precision fp is not in the model's precision set \[4, 8\]"):
        dwq.set_precision(net, fp)
    with pytest.raises(ValueError, match=r"precision fp is not in this layer's precision set \[4, 8\]"):
        net[0].precision = fp
    assert [net[0].precision, net[2].precision] == [(4, 4), (4, 4)] and dwq.get_precision(net) == 4
    with pytest.raises(ValueError, match=r"precision fp is not in the model's precision set \[4, 8\]"):
        dwq.precision(net, fp)
    assert dwq.get_precision(net) == 4


def test_layers_whose_sets_differ_after_the_first_entry_have_no_shared_set():
    """[4, 8] and [4, 16] are two sets (the same first entry): precision_set and set_precision refuse them,
    naming both layers."""
    net = nn.Sequential(QConv2d(3, 4, 3, precisions=[4, 8]), nn.Flatten(), QLinear(36, 2, precisions=[4, 16]))
    msg = (r"the model's layers have different precision sets: \[4, 8\] \('0', QConv2d\) and \[4, 16\] "
           r"\('2', QLinear\)")
    with pytest.raises(ValueError, match=msg):
        dwq.precision_set(net)
    with pytest.raises(ValueError, match=msg):
        dwq.set_precision(net, 4)
