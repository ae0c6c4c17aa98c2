"""The CPU GEMM's K-chunked path keeps each chunk's int32 partial sums exact (cpu::kMaxKChunk = 65,536).

A stored weight byte is its code less 128 (8 bits and more), so one 8-bit limb pass sums up to
255 * 128 per k: exact in int32 for K <= 65,536 only (255 * 128 * 65,536 < 2^31). Past 65,793 a
single pass wraps. test_qgemm.py's extreme case has K = 65,539, where even one pass still fits; here K
is well past that, with every activation code at its maximum and weight codes at 0 (stored -128) and
at the maximum, on every CPU path, bit-exact with the int64 reference."""
import pytest
import torch

from dwq.ops._lib import HAS_EXT

if not HAS_EXT:  # DWQ_REQUIRE_EXT=1 already turned a missing extension into an ImportError
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops import qgemm_reference as ref  # noqa: E402


@pytest.mark.parametrize("bits, K", [(8, 70001), (8, 2 * 65536 + 5), (16, 2 * 65536 + 7)])
def test_extreme_codes_past_one_int32_pass(isa, bits, K):
    """Rows of all-maximum and all-zero codes against weights of all 0, all maximum and a mix."""
    qmax = (1 << bits) - 1
    dt = torch.uint8 if bits <= 8 else torch.int32
    x = torch.full((3, K), qmax, dtype=dt)
    x[1] = 0
    x[2, ::2] = 0
    w = torch.zeros(3, K, dtype=dt)
    w[1] = qmax
    w[2, 1::3] = qmax
    zx = torch.tensor([0], dtype=torch.int32)
    for zw in ([0, 0, 0], [qmax, 0, qmax // 2 + 1]):
        zw = torch.tensor(zw, dtype=torch.int32)
        got = q.qgemm_acc(x, zx, bits, q.pack_weight(w, zw, bits))
        want = ref.qgemm_acc_ref(x, zx, w, zw)
        assert torch.equal(got, want), \
            f"{bits} bits, K {K}, zw {zw.tolist()} on {isa}: {got.tolist()} != {want.tolist()}"
