"""The integer engine's range check of activation codes (a code above 2^bits - 1 is an error) on the uint8
paths of the AVX-512 row packers: a GEMM row's copy + sum (one packer per row, its count added to the
item's), a strided conv's im2col rows and a stride-1 conv's implicit pixel sums. The bad code sits in the
first row or pixel, at 7 bits (codes 128..255 fit the byte but not the width) and at 4 bits, with clean
rows after it, inside a full 64-byte block and in a tail: each must be found, and the clean input exact."""
import pytest
import torch

from dwq.ops import HAS_EXT

if not HAS_EXT:
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops import qgemm_reference as ref  # noqa: E402
from kernel_data import rand_codes, rand_zp  # noqa: E402

OUTSIDE = r"outside 0\.\.\d+"


def _gemm(g, bits, k):
    x = rand_codes(g, (13, 100), bits, torch.uint8)
    w = rand_codes(g, (9, 100), 8)
    zx, zw = rand_zp(g, bits), rand_zp(g, 8, (9,))
    wp = q.pack_weight(w, zw, 8)
    return x, (0, k), lambda t: q.qgemm_acc(t, zx, bits, wp), lambda t: ref.qgemm_acc_ref(t, zx, w, zw)


def _conv(g, bits, k, stride):
    x = rand_codes(g, (2, 8, 6, 6), bits, torch.uint8).contiguous(memory_format=torch.channels_last)
    w = rand_codes(g, (9, 8, 3, 3), 8)
    zx, zw = rand_zp(g, bits), rand_zp(g, 8, (9,))
    wp = q.pack_conv_weight(w, zw, 8)
    return (x, (0, k % 8, 0, (k // 8) % 6), lambda t: q.qconv2d_acc(t, zx, bits, wp, 3, stride, 1),
            lambda t: ref.qconv2d_acc_ref(t, zx, w, zw, (stride, stride), (1, 1)))


CASES = {"gemm rows": _gemm,
         "im2col conv": lambda g, bits, k: _conv(g, bits, k, 2),
         "implicit conv": lambda g, bits, k: _conv(g, bits, k, 1)}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("bits", [4, 7])
@pytest.mark.parametrize("k", [5, 70])
def test_a_code_out_of_range_in_the_first_row_is_found(isa, case, bits, k):
    """The clean codes give the reference's accumulators; one code 2^bits (or 255) at index k of the first
    row (k 5: in the first 64-byte block or a tail; 70: past it, for the GEMM's 100 codes a row; for the
    convs, channel k % 8 of a pixel of the first image row) is an error although every later row is in range."""
    g = torch.Generator().manual_seed(bits * 100 + k)
    x, at, op, want = CASES[case](g, bits, k)
    assert torch.equal(op(x), want(x)), f"{case} {isa}: accumulators differ on in-range codes"
    for bad in (1 << bits, 255):
        y = x.clone()
        y[at] = bad
        with pytest.raises(RuntimeError, match=OUTSIDE):
            op(y)
            pytest.fail(f"{case} {isa}: code {bad} at {at} of {bits}-bit codes was not found")
