"""The C++ checks of the fused quantizer ops (csrc/ops/quantizer_fused_checks.h), called through
torch.ops.dwq: a slot one past the running buffers (a write past their end), buffers of unequal
length or not contiguous, ema = 1 and a weight without output channels are refused and named."""

import pytest
import torch

from dwq.ops import HAS_EXT

pytestmark = pytest.mark.skipif(not HAS_EXT, reason="dwq._C (the compiled extension) is not importable")


def _state(n=3, n_init=None):
    return torch.zeros(n), torch.zeros(n), torch.zeros(n if n_init is None else n_init, dtype=torch.bool)


def _act(state=None, slot=0, observed=0, ema=0.9, training=True):
    rmin, rmax, init = state if state is not None else _state()
    return torch.ops.dwq.act_qparams(torch.randn(4, 8), rmin, rmax, init, slot, observed, 8, ema, training)


@pytest.mark.parametrize("arg", ["slot", "observed"])
def test_a_slot_one_past_the_buffers_is_refused(arg):
    kw = {arg: 3}
    with pytest.raises(RuntimeError, match=rf"dwq.act_qparams: {arg} 3 is outside running_min \[3\]"):
        _act(**kw)
    _act(**{arg: 2})  # the last slot is one


def test_running_buffers_must_be_contiguous():
    rmin, rmax, init = _state()
    with pytest.raises(RuntimeError, match=r"dwq.act_qparams: running_min must be a contiguous 1-D Float tensor"):
        _act((torch.zeros(6)[::2], rmax, init))


@pytest.mark.parametrize("lengths", [(3, 3, 2), (3, 2, 3)])
def test_running_buffers_must_have_one_length(lengths):
    a, b, c = lengths
    state = (torch.zeros(a), torch.zeros(b), torch.zeros(c, dtype=torch.bool))
    with pytest.raises(RuntimeError, match=rf"dwq.act_qparams: running_min, running_max and initialized must have "
                                           rf"one length, got {a}, {b} and {c}"):
        _act(state, slot=0, observed=1)


@pytest.mark.parametrize("ema", [1.0, -0.5, 1.5])
def test_ema_outside_0_1_is_refused(ema):
    with pytest.raises(RuntimeError, match=rf"dwq.act_qparams: ema must be in \[0, 1\), got {ema:g}"):
        _act(ema=ema)


def test_weight_fake_quantize_needs_output_channels():
    with pytest.raises(RuntimeError, match=r"dwq.weight_fake_quantize: w must have output channels in dim 0, "
                                           r"got \[0, 3\]"):
        torch.ops.dwq.weight_fake_quantize(torch.zeros(0, 3), 8)
