"""ActQuantizer: in eval mode a precision that saw training batches uses its own running range, not the
observed one (with zero_point="float" too), and a range given by set_range, or held by a copy or an
unpickled quantizer, counts as tracked at once, so its eval qparams are computed once and kept."""
import copy
import pytest
import torch
from test_eval_qparams import _pickled, calls  # noqa: F401 (calls: a fixture)

from dwq.ops import HAS_EXT
from dwq.quant import ActQuantizer


def _trained(zero_point, batches):
    torch.manual_seed(0)
    q = ActQuantizer([4, 8], zero_point=zero_point).train()
    for bits, x in batches:
        q(x, bits)
    return q.eval()


@pytest.mark.parametrize("zero_point", ["int", "float"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # (float64: the pure-PyTorch path)
def test_eval_at_a_trained_precision_ignores_the_other_precisions_batches(zero_point, dtype):
    small = torch.linspace(-0.5, 1.0, 64, dtype=dtype)
    wide = torch.linspace(-8.0, 16.0, 64, dtype=dtype)
    both = _trained(zero_point, [(4, small), (8, wide)])
    only4 = _trained(zero_point, [(4, small)])
    assert not torch.equal(both.running_min[2], only4.running_min[2])  # the observed slots differ
    x = torch.linspace(-1.0, 2.0, 50, dtype=dtype)
    assert torch.equal(both(x, 4), only4(x, 4))
    # (and the 8-bit slot, trained on `wide` only, gives a coarse grid that `only4` cannot)
    assert not torch.equal(both(x, 8), only4(x, 8))


needs_ext = pytest.mark.skipif(not HAS_EXT, reason="dwq._C is not built (eval qparams are kept for the fused op only)")


@needs_ext
def test_a_range_given_by_set_range_is_asked_for_once(calls):
    made = calls
    q = ActQuantizer([4, 8]).eval()
    q.set_range(-1.0, 3.0, precision=4)
    x = torch.linspace(-2.0, 4.0, 32)
    a, b = q(x, 4), q(x, 4)
    assert made == [False]  # one eval call: the second forward reused its scale and zero point
    assert torch.equal(a, b)
    assert -1.1 < a.min() < -0.9 and 2.9 < a.max() < 3.1  # the set range (on its grid), not the batch's -2..4


@needs_ext
@pytest.mark.parametrize("how", [copy.deepcopy, _pickled])
def test_a_copy_of_a_tracked_quantizer_keeps_its_eval_qparams(calls, how):
    q = ActQuantizer([4, 8]).train()
    q(torch.linspace(-1.0, 3.0, 32), 4)
    other = how(q.eval())
    calls.clear()
    x = torch.linspace(-2.0, 4.0, 32)
    a, b = other(x, 4), other(x, 4)
    assert calls == [False]  # the copy read its own flags: its range is tracked, the second forward asks nothing
    assert torch.equal(a, b) and torch.equal(a, q(x, 4))
