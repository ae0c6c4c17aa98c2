"""A packed weight's header bits must be 2..16 (cpu::parse_packed_weight), the widths pack_weight writes.

A header relabelled to 0, 1 or 17 bits keeps a limb count that agrees (1 limb for 0 and 1, 2 for 17), and
with 1 bit the codes and zero points of a 2-bit blob holding only 0 and 1 pass every other check: the
blob would be read as a 1-bit weight. It is refused as a bad header by the GEMM and the conv instead."""
import pytest
import torch

from dwq.ops import HAS_EXT

if not HAS_EXT:
    pytest.skip("dwq._C (the compiled extension) is not importable", allow_module_level=True)

from dwq.ops import qgemm as q  # noqa: E402
from dwq.ops.qgemm_reference import qconv2d_acc_ref  # noqa: E402
from test_packed_weight_header_fields_are_validated import BITS_OFF, _field, _set  # noqa: E402

I32 = torch.int32
BAD = r"w_packed is not a dwq packed weight \(bad header\)"


@pytest.mark.parametrize("bits, relabel", [(2, 1), (2, 0), (2, -1), (16, 17), (9, 17)])
def test_a_header_relabelled_outside_2_to_16_bits_is_refused(monkeypatch, bits, relabel):
    """A blob of 0/1 codes (zero points 0/1) whose header says `relabel` bits is refused before any read."""
    monkeypatch.delenv("DWQ_PACK_ZP_SHIFT", raising=False)
    g = torch.Generator().manual_seed(relabel + 5)
    w = torch.randint(0, 2, (4, 2, 3, 3), dtype=torch.uint8 if bits <= 8 else I32, generator=g)
    zw = torch.tensor([0, 1, 1, 0], dtype=I32)
    x = torch.randint(0, 4, (1, 2, 5, 5), dtype=torch.uint8, generator=g)
    zx = torch.tensor([1], dtype=I32)
    blob = q.pack_conv_weight(w, zw, bits)
    assert torch.equal(q.qconv2d_acc(x, zx, 2, blob, (3, 3)), qconv2d_acc_ref(x, zx, w, zw)), "the intact blob"
    _set(blob, BITS_OFF, relabel)
    assert _field(blob, BITS_OFF) == relabel
    gemm_x = x[0, :, :3, :3].permute(1, 2, 0).reshape(1, 18)
    for name, call in [("qconv2d_acc", lambda: q.qconv2d_acc(x, zx, 2, blob, (3, 3))),
                       ("qgemm_acc", lambda: q.qgemm_acc(gemm_x, zx, 2, blob))]:
        with pytest.raises(RuntimeError, match=rf"dwq\.{name}: {BAD}"):
            call()
