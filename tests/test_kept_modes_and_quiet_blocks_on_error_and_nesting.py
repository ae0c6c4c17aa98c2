"""dwq.nn.kept_modes and dwq.quant.untrained.untrained_quiet pinned where the suite left them open (found
by mutation): both undo themselves when the block raises, kept_modes gives the model to ``as``, and a quiet
block inside another leaves the outer one quiet."""
import warnings

import pytest
import torch
from torch import nn

from dwq.nn.modes import kept_modes
from dwq.nn.sbn import SwitchableBatchNorm2d
from dwq.quant.untrained import quiet, untrained_quiet


def _mixed():
    m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.BatchNorm1d(2), nn.ReLU())).train()
    m[1][0].eval()  # a frozen part
    return m, {n: mod.training for n, mod in m.named_modules()}


def test_kept_modes_restores_each_module_when_the_block_raises():
    m, want = _mixed()
    with pytest.raises(RuntimeError, match="inside"):
        with kept_modes(m):
            m.eval()
            raise RuntimeError("inside")
    assert {n: mod.training for n, mod in m.named_modules()} == want


def test_kept_modes_gives_the_model_and_restores_modes_set_either_way():
    m, want = _mixed()
    with kept_modes(m) as got:
        assert got is m
        m.eval()
        m[1][0].train()
    assert {n: mod.training for n, mod in m.named_modules()} == want


def test_a_nested_quiet_block_leaves_the_outer_one_quiet():
    assert not quiet()
    with untrained_quiet():
        with untrained_quiet():
            assert quiet()
        assert quiet()
    assert not quiet()


def test_a_quiet_block_ends_when_it_raises():
    with pytest.raises(RuntimeError, match="inside"):
        with untrained_quiet():
            raise RuntimeError("inside")
    assert not quiet()
    # and an untrained branch warns again outside it
    sbn = SwitchableBatchNorm2d(2, precisions=[4]).eval()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        sbn(torch.zeros(1, 2, 1, 1))
    assert any("never seen a training batch" in str(x.message) for x in w)
