"""dwq.deploy.bitpack: the argument checks that the round-trip test does not reach (found by mutation)."""
import pytest
import torch

from dwq.deploy.bitpack import pack_bits, packed_nbytes, unpack_bits


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_negative_codes_are_refused_not_packed(bits):
    """A negative code is out of 0..2^bits-1 like a too large one: as uint64 it would set every high bit
    of its group and overwrite its neighbours' codes."""
    with pytest.raises(ValueError, match="codes must lie in"):
        pack_bits(torch.tensor([1, -1, 2], dtype=torch.int32), bits)
    with pytest.raises(ValueError, match="codes must lie in"):
        pack_bits(torch.tensor([-(2**40)]), bits)


def test_bool_codes_are_refused():
    """Only integer tensors are codes: a bool mask is not (the check names its dtype)."""
    with pytest.raises(ValueError, match="codes must be an integer tensor, got torch.bool"):
        pack_bits(torch.tensor([True, False, True]), 2)


@pytest.mark.parametrize("bits", [3, 8])
def test_unpack_refuses_a_stream_of_the_wrong_length(bits):
    """The stream of numel codes is exactly ceil(numel * bits / 8) bytes: one byte short (a truncated file)
    was read as zero codes at the end, one byte long failed inside numpy."""
    n = 13
    data = pack_bits(torch.arange(n) % (1 << bits), bits)
    assert data.numel() == packed_nbytes(n, bits)
    for bad in (data[:-1], torch.cat([data, data[:1]])):
        with pytest.raises(ValueError, match=rf"unpack_bits: expected uint8 \[{packed_nbytes(n, bits)}\] for {n} codes"):
            unpack_bits(bad, bits, n)
    for bad in (data.to(torch.int8), data.reshape(1, -1)):
        with pytest.raises(ValueError, match="unpack_bits: expected uint8"):
            unpack_bits(bad, bits, n)
