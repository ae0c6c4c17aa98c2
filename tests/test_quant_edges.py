"""Quantizer math and precision controls at their edges: the range checks of both qparams functions,
an activation quantizer's eval range on the pure-PyTorch path (dtypes the fused kernel does not take),
a batch without a finite width left out of the running range, a weight quantizer along axis 1, and the
model-wide precision checks (every layer at one precision, one shared set)."""
import math

import pytest
import torch
from torch import nn

import dwq
from dwq.nn import QConv2d
from dwq.quant import ActQuantizer, WeightQuantizer, choose_qparams, fake_quantize
from dwq.quant.qparams import qparams_from_range


def test_qparams_from_range_refuses_a_negative_range():
    """A (min, range) pair with range < 0 (a corrupt or hand-edited running range) gives a negative scale
    that flips every code; it is a ValueError, not a silent quantization."""
    with pytest.raises(ValueError, match="range_val < 0"):
        qparams_from_range(torch.tensor([0.0]), torch.tensor([-1.0]), 4)
    s, z = qparams_from_range(torch.tensor([0.0]), torch.tensor([0.0]), 4)  # a zero range is allowed
    assert bool((s > 0).all())


@pytest.mark.parametrize("which", ["min", "max"])
def test_choose_qparams_refuses_nan_in_either_bound(which):
    """A NaN upper bound (a tensor with NaN values) gave a NaN scale and NaN outputs as silently as a NaN
    lower bound would have; both are the same named ValueError."""
    lo, hi = torch.tensor([-1.0]), torch.tensor([1.0])
    if which == "min":
        lo = torch.tensor([float("nan")])
    else:
        hi = torch.tensor([float("nan")])
    with pytest.raises(ValueError, match="the observed range contains NaN"):
        choose_qparams(lo, hi, 4)


def _trained_two_ranges():
    """ActQuantizer([4, 8]) that saw [-1, 1] at 4 bits and [-5, 5] at 8 bits, in eval mode."""
    q = ActQuantizer([4, 8]).train()
    q(torch.linspace(-1, 1, 64), 4)
    q(torch.linspace(-5, 5, 64), 8)
    return q.eval()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_eval_range_is_the_precisions_own_on_every_path(dtype):
    """In eval mode a precision with its own tracked range uses it; the observed range (the union of every
    precision's batches) is only the fallback of a precision never trained at. The pure-PyTorch path
    (float64 here; the fused kernel takes float32/16) preferred the observed slot's minimum, so at 4 bits
    it quantized [-1, 1] with a [-5, 1] grid."""
    q = _trained_two_ranges()
    slot = q.slot(4)
    assert q.running_min[slot].item() == pytest.approx(-1.0) and q.running_max[slot].item() == pytest.approx(1.0)
    x = torch.linspace(-1.2, 1.2, 97)
    want = fake_quantize(x, *choose_qparams(torch.tensor([-1.0]), torch.tensor([1.0]), 4), 4)
    got = q(x.to(dtype), 4)
    assert got.dtype == dtype
    assert torch.allclose(got.double(), want.double(), atol=1e-6)
    if dtype == torch.float64:  # and the two paths agree
        assert torch.allclose(got.float(), q(x.float(), 4), atol=1e-6)


def test_a_batch_without_a_finite_width_leaves_the_running_range_as_it_was():
    """A train-mode batch with an infinite value (its width is not finite) must not enter the EMA: the
    range would become infinite and never recover, failing every later forward at that precision."""
    q = ActQuantizer([4, None]).train()
    q(torch.linspace(-1, 1, 16, dtype=torch.float64), None)
    before = (q.running_min.clone(), q.running_max.clone(), q.initialized.clone())
    bad = torch.tensor([0.0, 1.0, math.inf], dtype=torch.float64)
    q(bad, None)  # full precision: tracked (train mode), returned unchanged
    assert torch.equal(q.running_min, before[0]) and torch.equal(q.running_max, before[1])
    assert torch.equal(q.initialized, before[2])
    assert bool(torch.isfinite(q.running_max).all())


def test_weight_quantizer_along_axis_1_takes_each_column():
    """axis=1: one (scale, zero point) per column of the weight; the column is gathered with movedim
    (a plain reshape of a [3, 2] weight into 2 rows mixed the columns' values)."""
    w = torch.tensor([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0]])
    scale, zp = WeightQuantizer(axis=1).qparams(w, 4)
    assert torch.allclose(scale, torch.tensor([2 / 15, 2.0]))
    assert zp.tolist() == [0, 0]
    s0, _ = WeightQuantizer(axis=0).qparams(w.t().contiguous(), 4)  # the same as axis 0 of the transpose
    assert torch.allclose(scale, s0)


def test_get_precision_refuses_layers_at_different_precisions():
    """get_precision reports one precision only when every layer is at it: a model with one layer set
    apart (conv1 at 4 bits, the rest at 8) reported whichever layer came first."""
    m = nn.Sequential(QConv2d(1, 2, 3, precisions=[4, 8]), QConv2d(2, 2, 3, precisions=[4, 8]))
    dwq.set_precision(m, 8)
    assert dwq.get_precision(m) == 8
    m[0].precision = 4
    with pytest.raises(ValueError, match="different precisions"):
        dwq.get_precision(m)
    m[1].precision = 4
    assert dwq.get_precision(m) == 4


def test_precision_set_refuses_layers_with_different_sets():
    """A model's layers must share one precision set: precision_set returned the first layer's set for
    layers switchable to [2, 4] and [8, 16], and set_precision then set layers to widths outside their set."""
    m = nn.Sequential(QConv2d(1, 2, 3, precisions=[2, 4]), QConv2d(2, 2, 3, precisions=[8, 16]))
    with pytest.raises(ValueError, match="different precision sets"):
        dwq.precision_set(m)
    with pytest.raises(ValueError, match="different precision sets"):
        dwq.set_precision(m, 4)
