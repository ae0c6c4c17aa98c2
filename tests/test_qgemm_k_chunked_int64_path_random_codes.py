"""The K-chunked int64 path of the CPU GEMM driver (K beyond one int32 pass: 8-bit codes with
K * 255^2 > 2^31, and limbs with K > 32,768), on random codes that differ along K: each chunk must
meet its own slice of both operands. test_qgemm.py's large-K cases hold one value per row, where a
chunk that read another chunk's slice gave the same sums."""

import pytest
import torch

from dwq.ops._lib import HAS_EXT

if not HAS_EXT:  # DWQ_REQUIRE_EXT=1 already turned a missing extension into an ImportError
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops import qgemm_reference as ref  # noqa: E402
from kernel_data import rand_codes, rand_zp  # noqa: E402


# (x bits, w bits, K): K past one 65,536-deep int32 chunk (two or three chunks, the last one short
# and not a multiple of 4); 8 x 8 bits never fits the int32 pass there, 16 bits take two limbs.
CASES = [(8, 8, 65536 + 13), (6, 16, 65536 + 13), (16, 5, 65536 + 13), (16, 16, 2 * 65536 + 7), (12, 9, 65536 + 1)]


@pytest.mark.parametrize("xb, wb, K", CASES)
def test_k_chunks_meet_their_own_slices(isa, xb, wb, K):
    g = torch.Generator().manual_seed(xb * 100 + wb)
    M, N = 5, 3
    x = rand_codes(g, (M, K), xb)
    w = rand_codes(g, (N, K), wb)
    zx, zw = rand_zp(g, xb), rand_zp(g, wb, (N,))
    got = q.qgemm_acc(x, zx, xb, q.pack_weight(w, zw, wb))
    assert torch.equal(got, ref.qgemm_acc_ref(x, zx, w, zw)), f"xb {xb} wb {wb} K {K} {isa}"
