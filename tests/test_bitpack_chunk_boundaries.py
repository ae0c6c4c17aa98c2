"""dwq.deploy.bitpack works on chunks of _CHUNK codes (a multiple of 8, to bound its temporaries): the
stream is the same whatever the chunk size, and unpacking reads each chunk's bytes at their offset
(found by mutation: a chunk that dropped or misplaced codes passed every test below 4 M codes)."""
import pytest
import torch

from dwq.deploy import bitpack
from dwq.deploy.bitpack import pack_bits, packed_nbytes, unpack_bits


def _stream(codes, bits):
    """The layout by hand: code i at stream bits [i*bits, (i+1)*bits), least significant first."""
    v = 0
    for i, c in enumerate(codes.tolist()):
        v |= c << (i * bits)
    n = packed_nbytes(codes.numel(), bits)
    return torch.tensor(list(v.to_bytes(n, "little")), dtype=torch.uint8)


@pytest.mark.parametrize("bits", [2, 3, 5, 8, 9, 13, 16])
def test_codes_across_several_chunks_pack_and_unpack_exactly(bits, monkeypatch):
    monkeypatch.setattr(bitpack, "_CHUNK", 16)  # three full chunks and a partial one
    g = torch.Generator().manual_seed(bits)
    for n in (16, 17, 3 * 16 + 5):
        codes = torch.randint(0, 1 << bits, (n,), generator=g, dtype=torch.int32)
        data = pack_bits(codes, bits)
        assert torch.equal(data, _stream(codes, bits)), (bits, n)
        assert torch.equal(unpack_bits(data, bits, n), codes), (bits, n)
