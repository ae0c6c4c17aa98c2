"""dwq.quant.eval_qparams / qparams: what the host knows of the tracked flags after a write it did not see,
and the shape check of a range (found by mutation)."""
import pytest
import torch

from dwq.ops import HAS_EXT
from dwq.quant import ActQuantizer, normalize_precision
from dwq.quant.eval_qparams import TrackedSlots
from dwq.quant.qparams import choose_qparams, qparams_from_range

P4 = normalize_precision(4)


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C is not built (the cache serves the fused op)")
@pytest.mark.filterwarnings("ignore:dwq. activation quantizers that never saw a training batch")
def test_flags_cleared_behind_the_hosts_back_keep_nothing():
    """After an in-place write of the flags (their version moves) nothing is known: with every slot
    cleared eval uses each batch's own range, so two batches get two grids, not the first one's kept."""
    q = ActQuantizer([4, 8, None]).train()
    q(torch.tensor([-1.0, 2.0]), 4, P4)
    q.eval()
    a, b = torch.linspace(-1, 1, 50), torch.linspace(-4, 4, 50)
    q(a, 4, P4)
    q.initialized.fill_(False)
    ya, yb = q(a, 4, P4), q(b, 4, P4)
    fresh = ActQuantizer([4, 8, None]).eval()
    assert torch.equal(ya, fresh(a, 4, P4)) and torch.equal(yb, fresh(b, 4, P4))
    assert yb.max() > 3  # (a's range kept would have clamped b to [-1, 1])


def test_tracked_slots_are_a_lower_bound_that_a_write_resets():
    t = torch.tensor([False, False, False])
    s = TrackedSlots()
    s.read(t)
    assert not s.known(t, 0)
    t[2] = True  # a write the host did not see
    assert not s.valid(t) and not s.known(t, 2)
    s.read(t)
    assert s.known(t, 2) and not s.known(t, 0)
    valid = s.valid(t)
    t[0] = True
    s.raised(t, valid, (0, 2))  # the flags as they were (2), with 0 set
    assert s.known(t, 0) and s.known(t, 2) and not s.known(t, 1)
    valid = s.valid(t)
    t[1] = True
    s.raised(t, valid, (1, 2))  # 2 was known already, 1 was not
    assert all(s.known(t, i) for i in range(3))


def test_a_min_and_max_of_different_shapes_are_refused():
    """[1] against [3] broadcast silently into three channels' qparams."""
    with pytest.raises(ValueError, match=r"min_val and max_val shapes differ: \(1,\) vs \(3,\)"):
        choose_qparams(torch.tensor([-1.0]), torch.tensor([1.0, 2.0, 3.0]), 4)
    with pytest.raises(ValueError, match=r"min_val and range_val shapes differ: \(2,\) vs \(1,\)"):
        qparams_from_range(torch.tensor([-1.0, 0.0]), torch.tensor([1.0]), 4)
