"""The three int32 limb partials of the CPU GEMM driver (two-limb activations and weights, 9..16 bits
each, K <= 32,768): t1 = P01 + P10 sums two cross products of up to 255 * 128 each per k, so it fits
int32 only up to K = 32,768; beyond it the driver must take the int64 path. test_qgemm.py's 16-bit
overflow case has K = 65,539, past both bounds, so a limb bound moved up to 65,536 passed it. Here K
sits between the bounds, with the extreme codes that make both cross products large and of one sign."""

import pytest
import torch

from dwq.ops._lib import HAS_EXT

if not HAS_EXT:  # DWQ_REQUIRE_EXT=1 already turned a missing extension into an ImportError
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops import qgemm_reference as ref  # noqa: E402
from kernel_data import rand_codes, rand_zp  # noqa: E402


@pytest.mark.parametrize("K", [32768, 32769, 40000, 65536])
def test_two_limb_products_between_the_limb_and_int64_bounds(isa, K):
    g = torch.Generator().manual_seed(K)
    x = rand_codes(g, (4, K), 16)
    x[0] = 65535  # both limbs 255
    x[1] = 0
    w = rand_codes(g, (3, K), 16)
    w[0] = 0  # both limbs stored as -128: P01 + P10 = -2 * 255 * 128 * K against x[0]
    w[1] = 65535
    zx, zw = rand_zp(g, 16), rand_zp(g, 16, (3,))
    got = q.qgemm_acc(x, zx, 16, q.pack_weight(w, zw, 16))
    assert torch.equal(got, ref.qgemm_acc_ref(x, zx, w, zw)), f"K {K} {isa}"
