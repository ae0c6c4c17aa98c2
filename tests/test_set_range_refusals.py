"""dwq.quant.quantizers: set_range's order check at a gap below one (found by mutation)."""
import pytest

from dwq.quant import ActQuantizer


@pytest.mark.parametrize("lo, hi", [(0.5, 0.25), (1e-3, 0.0), (-0.25, -0.5)])
def test_set_range_refuses_any_min_above_max(lo, hi):
    q = ActQuantizer([4, 8])
    with pytest.raises(ValueError, match="set_range: min_val must be <= max_val"):
        q.set_range(lo, hi)
    assert not q.initialized.any()
    q.set_range(hi, hi)  # an empty range is one
    assert q.initialized.all()
