"""ActQuantizer(zero_point="float") keeps the reference's state, (min, range): its eval scale is
``range / (2^b - 1)`` of the stored range bit for bit (not ``((min + range) - min) / (2^b - 1)``, one ulp
off for many float32 pairs), and a slot's first training batch starts both EMAs from zero whatever the
buffers held before (a strict=False load of another mode's state_dict fills ``running_min`` alone)."""
import pytest
import torch

from dwq.quant import ActQuantizer
from dwq.quant.fake_quant import fake_quantize_float_zp
from dwq.quant.qparams import MIN_SCALE


def _pairs_whose_max_does_not_give_back_the_range():
    """float32 (min, range) pairs with ``(min + range) - min != range`` (fixed seed)."""
    g = torch.Generator().manual_seed(0)
    lo, rng = torch.randn(256, generator=g), torch.rand(256, generator=g) * 3
    off = ((lo + rng) - lo) != rng
    assert off.sum() >= 8, "the seed gave too few pairs whose min + range loses the range's last bits"
    return list(zip(lo[off][:8].tolist(), rng[off][:8].tolist()))


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("lo, rng", _pairs_whose_max_does_not_give_back_the_range())
def test_float_eval_qparams_scale_is_the_stored_range_over_the_levels(lo, rng, bits):
    """eval_qparams of a float-mode slot divides the stored range itself (the module docstring's promise:
    an imported reference range gives exactly the reference's scale), and the eval forward uses that scale."""
    q = ActQuantizer([bits], zero_point="float").eval()
    q.running_min.fill_(lo)
    q.running_range.fill_(rng)
    q.initialized.fill_(True)
    scale, zp = q.eval_qparams(bits, bits)
    want = torch.clamp(torch.tensor([rng]) / float((1 << bits) - 1), min=MIN_SCALE)
    assert torch.equal(scale, want), f"scale {scale.item()!r} is not range / {(1 << bits) - 1} = {want.item()!r}"
    assert zp.tolist() == [lo], f"the float zero point {zp.tolist()} is not the stored minimum {lo}"
    x = torch.linspace(lo - 1.0, lo + rng + 1.0, 301)
    assert torch.equal(q(x, bits), fake_quantize_float_zp(x, want, zp, bits, None)), "eval forward used another scale"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # (float64: the pure-PyTorch path)
@pytest.mark.parametrize("zero_point", ["int", "float"])
def test_the_first_batch_of_a_slot_ignores_what_its_untracked_buffers_held(zero_point, dtype):
    """A strict=False load of the other mode's state_dict fills running_min but not the flags: the next
    training batch must start the slot as a fresh quantizer's first batch does (float: 0.9 * batch from
    zero; int: the batch's range), not run the EMA from the stale minimum."""
    other = ActQuantizer([4], zero_point="float" if zero_point == "int" else "int").train()
    other(torch.tensor([-3.0, 5.0]), 4)
    q = ActQuantizer([4], zero_point=zero_point)
    q.load_state_dict(other.state_dict(), strict=False)
    assert q.running_min.ne(0).all() and not q.initialized.any()  # (the stale minimum this test is about)
    fresh = ActQuantizer([4], zero_point=zero_point).train()
    x = torch.linspace(-1.0, 2.0, 31, dtype=dtype)
    assert torch.equal(q.train()(x, 4), fresh(x, 4))
    for name in ("running_min", q._upper_name, "initialized"):
        got, want = getattr(q, name), getattr(fresh, name)
        assert torch.equal(got, want), (
            f"{name} after the first batch: {got.tolist()}, a fresh quantizer's {want.tolist()}")
