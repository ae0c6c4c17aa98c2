"""TrackedSlots.raised after a write the host did not see: the flags it knew before are stale, so only
the slots the new write set are known (none for a train-mode batch that tracked nothing), and an eval
quantizer whose flags were cleared in place keeps no qparams after such a batch."""
import pytest
import torch

from dwq.ops import HAS_EXT
from dwq.quant import ActQuantizer, normalize_precision
from dwq.quant.eval_qparams import TrackedSlots

P4 = normalize_precision(4)


@pytest.mark.parametrize("slots", [(), (1,), (0, 2)])
def test_raised_after_an_unseen_write_knows_only_the_slots_it_set(slots):
    """Every flag known, then cleared behind the host's back: raised(t, valid(t) = False, slots) knows
    ``slots`` and nothing of what was known before the clear."""
    t = torch.ones(3, dtype=torch.bool)
    s = TrackedSlots()
    s.read(t)
    assert all(s.known(t, i) for i in range(3))
    t.fill_(False)  # a write the host did not see
    valid = s.valid(t)
    assert not valid
    t[list(slots)] = True
    s.raised(t, valid, slots)
    known = [i for i in range(3) if s.known(t, i)]
    assert known == list(slots), f"after the unseen clear and a write of slots {slots} the host knows {known}"


@pytest.mark.skipif(not HAS_EXT, reason="dwq._C is not built (the cache serves the fused op)")
@pytest.mark.filterwarnings("ignore:dwq. activation quantizers that never saw a training batch")
def test_a_batch_that_tracks_nothing_after_a_cleared_flag_write_keeps_no_eval_qparams():
    """The flags cleared in place, then a train-mode full-precision batch without a finite range (tracked
    by no slot, no error): eval still uses each batch's own range, so a second batch is not clamped to the
    first one's kept grid."""
    q = ActQuantizer([4, 8, None]).train()
    q(torch.tensor([-1.0, 2.0]), 4, P4)
    q.initialized.fill_(False)
    q(torch.tensor([0.0, float("nan")]), None, None)
    assert not q.initialized.any()
    q.eval()
    a, b = torch.linspace(-1, 1, 50), torch.linspace(-4, 4, 50)
    ya, yb = q(a, 4, P4), q(b, 4, P4)
    fresh = ActQuantizer([4, 8, None]).eval()
    assert torch.equal(ya, fresh(a, 4, P4)), "the first eval batch was not quantized with its own range"
    assert torch.equal(yb, fresh(b, 4, P4)), f"the second batch reused the first one's grid (max {yb.max().item()})"
