"""dwq.deploy.bitpack at the ends of its widths: pack_bits and unpack_bits refuse a width outside 2..16 (an
artifact's stream read at 1 or 17 bits would be other codes, or fail inside numpy), and at 2 and 16 bits
the largest code of every position fills exactly the stream's bits, the last byte's unused bits left 0."""
import pytest
import torch

from dwq.deploy.bitpack import pack_bits, packed_nbytes, unpack_bits


@pytest.mark.parametrize("bits,msg", [(1, "bits must be in 2..16, got 1"), (17, "bits must be in 2..16, got 17"),
                                      (0, "bits must be in 2..16, got 0"), (4.0, "bits must be an int in 2..16")])
def test_a_width_outside_2_to_16_is_refused(bits, msg):
    """Both directions check the width before touching the stream."""
    with pytest.raises(ValueError, match=msg):
        pack_bits(torch.zeros(5, dtype=torch.int32), bits)
    data = torch.zeros(packed_nbytes(8, int(bits)), dtype=torch.uint8)
    with pytest.raises(ValueError, match=msg):
        unpack_bits(data, bits, 8)


@pytest.mark.parametrize("bits", [2, 16])
@pytest.mark.parametrize("n", [1, 3, 8, 13])
def test_the_largest_and_smallest_codes_fill_exactly_their_bits(bits, n):
    """n codes 2^bits - 1 set the stream's first n * bits bits and no other; codes 0 set none; both unpack."""
    top = torch.full((n,), (1 << bits) - 1, dtype=torch.int32)
    data = pack_bits(top, bits)
    want = ((1 << (n * bits)) - 1).to_bytes(packed_nbytes(n, bits), "little")
    assert bytes(data.tolist()) == want, f"{n} codes of {bits} bits: stream {bytes(data.tolist()).hex()}"
    assert torch.equal(unpack_bits(data, bits, n), top)
    zero = pack_bits(torch.zeros(n, dtype=torch.int64), bits)
    assert zero.numel() == packed_nbytes(n, bits) and not zero.any()
    assert torch.equal(unpack_bits(zero, bits, n), torch.zeros(n, dtype=torch.int32))
